"""Dataset registry: names -> loader functions ``(DataConfig) -> LoadedDataset``.

New datasets (imdb_50k, the paper's datasets) register a loader with `register_dataset` and become
available to `load_splits` and to every experiment without changes elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from absl import logging

from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset

__all__ = ["register_dataset", "available_datasets", "load_splits"]

Loader = Callable[[DataConfig], LoadedDataset]
_REGISTRY: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering `loader` under `name`; re-registering a name raises."""

    def wrap(loader: Loader) -> Loader:
        if name in _REGISTRY and _REGISTRY[name] is not loader:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = loader
        return loader

    return wrap


def available_datasets() -> tuple[str, ...]:
    """Sorted names accepted by `DataConfig.dataset`."""
    return tuple(sorted(_REGISTRY))


def load_splits(cfg: DataConfig) -> LoadedDataset:
    """Loads the dataset named by `cfg.dataset`, truncated to `cfg.max_docs_per_split` if set."""
    try:
        loader = _REGISTRY[cfg.dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {cfg.dataset!r}; available: {', '.join(available_datasets())}"
        ) from None
    ds = loader(cfg)
    if cfg.max_docs_per_split is not None:
        splits = {k: v.head(cfg.max_docs_per_split) for k, v in ds.splits.items()}
        ds = LoadedDataset(ds.name, ds.class_names, splits, ds.skipped, ds.source)
    for where, counts in ds.skipped.items():
        for reason, count in counts.items():
            if count:
                logging.warning("%s/%s: skipped %d rows (%s)", ds.name, where, count, reason)
    logging.info(
        "loaded %s: %s, %d classes",
        ds.name,
        ", ".join(f"{k}={len(v)}" for k, v in ds.splits.items()),
        ds.num_classes,
    )
    return ds
