"""Registers the paper's datasets: ``<name>`` (config ``paper``) and ``<name>/<config>``."""

from __future__ import annotations

import functools

from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset
from attn_interp.data.paper.amazon_5class import amazon_5class_dataset_builder as amazon
from attn_interp.data.paper.base import PaperBuilder
from attn_interp.data.paper.imdb_10class import imdb_10class_dataset_builder as imdb
from attn_interp.data.paper.yahoo_answers import yahoo_answers_dataset_builder as yahoo
from attn_interp.data.paper.yelp_5class import yelp_5class_dataset_builder as yelp
from attn_interp.data.prepared import builder_dirs, prepare_and_read
from attn_interp.data.registry import register_dataset

__all__ = ["PAPER_BUILDERS", "make_paper_builder", "load_paper_dataset"]

PAPER_BUILDERS: dict[str, type[PaperBuilder]] = {
    "yahoo_answers": yahoo.Builder,
    "imdb_10class": imdb.Builder,
    "yelp_5class": yelp.Builder,
    "amazon_5class": amazon.Builder,
}


def make_paper_builder(
    name: str, cfg: DataConfig, config: str = "paper", *, allow_download: bool = False
) -> PaperBuilder:
    """The builder `name` with builder config `config` ("paper", "dummy" or a
    `PaperBuilderConfig`), data dir ``<cache_dir>/tfds`` unless `cfg.data_dir`; not yet prepared."""
    try:
        cls = PAPER_BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown paper dataset {name!r}; use one of {list(PAPER_BUILDERS)}"
        ) from None
    _, data_dir, _ = builder_dirs(cfg)
    return cls(
        config=config,
        data_dir=str(data_dir),
        bad_rows=cfg.bad_rows,
        allow_download=allow_download,
        file_format="array_record",
    )


def load_paper_dataset(name: str, config: str, cfg: DataConfig) -> LoadedDataset:
    """Prepares (once) and reads paper dataset `name` with builder config `config`."""
    builder = make_paper_builder(name, cfg, config)
    registered = name if config == "paper" else f"{name}/{config}"
    return prepare_and_read(builder, cfg, registered)


for _name, _cls in PAPER_BUILDERS.items():
    for _config in _cls.BUILDER_CONFIGS:
        _registered = _name if _config.name == "paper" else f"{_name}/{_config.name}"
        register_dataset(_registered)(functools.partial(load_paper_dataset, _name, _config.name))
