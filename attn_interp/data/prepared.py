"""Prepare a TFDS builder (array_record) and read its train / validation / test into a dataset.

Shared by the loaders of TFDS-backed datasets (imdb_50k, the paper's datasets). Builders record in
``info.metadata`` where the data came from (``source``, ``source_format``) and what they left out
(``skipped``: where -> {reason: count}); both are passed on to the `LoadedDataset`.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from attn_interp.data import fetch
from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.tfds_source import read_data_source

__all__ = ["SPLITS", "builder_dirs", "prepare_and_read"]

SPLITS = ("train", "validation", "test")


def builder_dirs(cfg: DataConfig) -> tuple[Path, Path, str | None]:
    """``(cache_dir, data_dir, manual_dir)`` as absolute paths (data dir: ``<cache_dir>/tfds``)."""
    cache = fetch.resolve_cache_dir(cfg.cache_dir)
    data_dir = Path(cfg.data_dir).expanduser().resolve() if cfg.data_dir else cache / "tfds"
    manual = str(Path(cfg.manual_dir).expanduser().resolve()) if cfg.manual_dir else None
    return cache, data_dir, manual


def prepare_and_read(
    builder: tfds.core.DatasetBuilder, cfg: DataConfig, name: str
) -> LoadedDataset:
    """Prepares `builder` once (reusing prepared data) and reads its three splits in file order."""
    _, _, manual = builder_dirs(cfg)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=manual),
    )
    class_names = tuple(builder.info.features["label"].names)
    splits: dict[str, Split] = {}
    for split in SPLITS:
        texts, labels = read_data_source(builder.as_data_source(split=split))
        splits[split] = Split(texts, labels)
    meta = builder.info.metadata or {}
    skipped = {
        str(where): {str(k): int(v) for k, v in counts.items()}
        for where, counts in dict(meta.get("skipped", {}) or {}).items()
    }
    source = str(meta.get("source", ""))
    if meta.get("source_format"):
        source = f"{source} ({meta['source_format']})"
    return LoadedDataset(name, class_names, splits, skipped, source)
