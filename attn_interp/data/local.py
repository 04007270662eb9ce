"""Loader ``local``: bring-your-own CSV / TSV / JSONL / JSON files with named text/label columns.

Either one file split deterministically by a hash of each (whitespace-collapsed, lowercased) text
(`DataConfig.local_path`), so duplicates always land in the same split and the split is the same on
every machine, or given split files (`local_train`, `local_test`, optional `local_validation`).

The corpus is named `DataConfig.local_name` (default "local") in the loaded dataset, and through it
in Table 1, the report, run folders and logs.

Label names: sorted numerically when every train label is a number (``"1"`` ... ``"10"``), else in
first-seen order in train. A validation/test label never seen in train is a bad row (`bad_rows`).
"""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import numpy as np

from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.readers import BadRowPolicy, RawRows, read_table
from attn_interp.data.registry import available_datasets, register_dataset

__all__ = ["hash_unit_interval", "hash_split_ids", "label_names_from_train", "load_local"]


def hash_unit_interval(text: str, salt: str = "") -> float:
    """A number in [0, 1) from sha256 of the whitespace-collapsed lowercased `text` and `salt`."""
    key = salt + "\x00" + " ".join(text.lower().split())
    digest = hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split_ids(texts: list[str], fractions: tuple[float, ...], salt: str = "") -> np.ndarray:
    """Split id (index into `fractions`) per text, int64 `[docs]`, from `hash_unit_interval`."""
    edges = np.cumsum(np.asarray(fractions, dtype=np.float64))
    edges[-1] = np.inf
    u = np.array([hash_unit_interval(t, salt) for t in texts], dtype=np.float64)
    return np.searchsorted(edges, u, side="right").astype(np.int64)


def label_names_from_train(labels: list[str]) -> tuple[str, ...]:
    """Numeric order if all labels parse as finite numbers, else first-seen order."""
    distinct = list(dict.fromkeys(labels))
    try:
        values = [float(x) for x in distinct]
    except ValueError:
        return tuple(distinct)
    if not all(np.isfinite(values)):
        return tuple(distinct)
    return tuple(x for _, x in sorted(zip(values, distinct, strict=True)))


def _subset(rows: RawRows, keep: np.ndarray) -> RawRows:
    out = RawRows(rows.path)
    for i in np.flatnonzero(keep):
        out.texts.append(rows.texts[i])
        out.labels.append(rows.labels[i])
        out.lines.append(rows.lines[i])
    return out


def _read(cfg: DataConfig, path: str) -> RawRows:
    return read_table(
        Path(path).expanduser(),
        text_column=cfg.local_text_column,
        label_column=cfg.local_label_column,
        fmt=cfg.local_format,
        bad_rows=cfg.bad_rows,
    )


@register_dataset("local")
def load_local(cfg: DataConfig) -> LoadedDataset:
    """Loads local files as described in the module docstring."""
    given = [cfg.local_train, cfg.local_validation, cfg.local_test]
    if cfg.local_name != "local" and cfg.local_name in available_datasets():
        raise ValueError(
            f"local_name {cfg.local_name!r} is the name of a registered dataset; choose another"
        )
    skipped: dict[str, collections.Counter] = {}
    if cfg.local_path and any(given):
        raise ValueError("give either local_path (hash split) or local_train/local_test, not both")
    if cfg.local_path:
        rows = _read(cfg, cfg.local_path)
        skipped["unsplit"] = rows.skipped
        ids = hash_split_ids(rows.texts, cfg.local_split_fractions, cfg.local_split_salt)
        parts = {name: _subset(rows, ids == k) for k, name in enumerate(_SPLITS)}
        source = f"local:{cfg.local_path} (hash split {cfg.local_split_fractions})"
    elif cfg.local_train and cfg.local_test:
        parts = {"train": _read(cfg, cfg.local_train), "test": _read(cfg, cfg.local_test)}
        if cfg.local_validation:
            parts["validation"] = _read(cfg, cfg.local_validation)
        else:
            f_train, f_val, _ = cfg.local_split_fractions
            ids = hash_split_ids(
                parts["train"].texts, (f_train / (f_train + f_val), 1.0), cfg.local_split_salt
            )
            full = parts["train"]
            parts["validation"] = _subset(full, ids == 1)
            parts["train"] = _subset(full, ids == 0)
            parts["train"].skipped = full.skipped
        for name, r in parts.items():
            skipped[name] = r.skipped
        source = "local:" + ",".join(str(p) for p in given if p)
    else:
        raise ValueError(
            "dataset 'local' needs local_path=FILE (split by a hash of the text) or "
            "local_train=FILE and local_test=FILE (optionally local_validation=FILE)"
        )
    class_names = label_names_from_train(parts["train"].labels)
    if not class_names:
        raise ValueError(f"no usable training rows in {parts['train'].path}")
    index = {name: i for i, name in enumerate(class_names)}
    splits: dict[str, Split] = {}
    for name in _SPLITS:
        r = parts[name]
        counts = skipped.setdefault(name, collections.Counter())
        bad = BadRowPolicy(cfg.bad_rows, RawRows(r.path, skipped=counts))
        texts, labels = [], []
        for text, label, line in zip(r.texts, r.labels, r.lines, strict=True):
            if label not in index:
                bad("unseen_label", line, f"label {label!r} never occurs in train {class_names}")
                continue
            texts.append(text)
            labels.append(index[label])
        splits[name] = Split(texts, np.asarray(labels, dtype=np.int32))
    return LoadedDataset(
        cfg.corpus_name,
        class_names,
        splits,
        {k: dict(v) for k, v in skipped.items()},
        source,
    )


_SPLITS = ("train", "validation", "test")
