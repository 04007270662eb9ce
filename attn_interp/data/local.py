"""Loader ``local``: bring-your-own CSV / TSV / JSONL / JSON files, or a folder of text files.

Sources (exactly one):

* one file (`DataConfig.local_path`) or a folder ``ROOT/LABEL/*`` (`local_dir`, see
  `attn_interp.data.folders`), split into train / validation / test with `local_split_fractions`
  by a hash of each (whitespace-collapsed, lowercased) text, so duplicates always land in the same
  split and the split is the same on every machine;
* given splits: files `local_train`, `local_test` (optional `local_validation`), or folders
  ``ROOT/train/LABEL/*``, ``ROOT/test/LABEL/*`` (optional ``ROOT/validation/LABEL/*``). Without a
  validation split, validation is the share ``local_split_fractions[1]`` (default 10%) of the train
  documents, those whose text hash lies in the top share of [0, 1).

The corpus is named `DataConfig.local_name` (default "local") in the loaded dataset, and through it
in Table 1, the report, run folders and logs.

Label names: sorted numerically when every train label is a number (``"1"`` ... ``"10"``), else in
first-seen order in train (for folders: sorted folder names). A validation/test label never seen
in train is a bad row (`bad_rows`).
"""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import numpy as np

from attn_interp.data.checks import UnusableDataError
from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.folders import read_folder_layout
from attn_interp.data.readers import BadRowPolicy, RawRows, encoding_hint, read_table
from attn_interp.data.registry import available_datasets, register_dataset

__all__ = ["hash_unit_interval", "hash_split_ids", "label_names_from_train", "load_local"]

_SPLITS = ("train", "validation", "test")


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


def _read(cfg: DataConfig, path: str) -> RawRows:
    return read_table(
        Path(path).expanduser(),
        text_column=cfg.local_text_column,
        label_column=cfg.local_label_column,
        fmt=cfg.local_format,
        bad_rows=cfg.bad_rows,
        encoding=cfg.local_encoding,
    )


def _hash_split(cfg: DataConfig, rows: RawRows) -> dict[str, RawRows]:
    ids = hash_split_ids(rows.texts, cfg.local_split_fractions, cfg.local_split_salt)
    return {name: rows.subset(ids == k) for k, name in enumerate(_SPLITS)}


def _carve_validation(cfg: DataConfig, full: RawRows) -> tuple[RawRows, RawRows]:
    """(train, validation): validation = the share ``local_split_fractions[1]`` of `full`."""
    share = cfg.local_split_fractions[1]
    ids = hash_split_ids(full.texts, (1.0 - share, share), cfg.local_split_salt)
    train = full.subset(ids == 0)
    train.skipped = full.skipped
    return train, full.subset(ids == 1)


def _read_sources(
    cfg: DataConfig,
) -> tuple[dict[str, RawRows], dict[str, collections.Counter], str]:
    """(split -> rows, where -> skip counts, source description) of the configured source."""
    given = [cfg.local_train, cfg.local_validation, cfg.local_test]
    chosen = [bool(cfg.local_path), bool(cfg.local_dir), any(given)]
    if sum(chosen) > 1:
        raise ValueError(
            "give one of local_path (one file), local_dir (a folder) or local_train/local_test"
        )
    fr = cfg.local_split_fractions
    if cfg.local_path or cfg.local_dir:
        if cfg.local_path:
            pool, source = _read(cfg, cfg.local_path), f"local:{cfg.local_path}"
        else:
            root = Path(cfg.local_dir).expanduser()
            pool = read_folder_layout(
                root,
                encoding=cfg.local_encoding,
                bad_rows=cfg.bad_rows,
                skip=cfg.local_skip_folders,
            )
            source = f"local:{root}/LABEL/*"
            if isinstance(pool, dict):  # ROOT/train, ROOT/test folders: given splits
                return _given(cfg, pool, f"local:{root}/{{train,test}}/LABEL/*")
        return _hash_split(cfg, pool), {"unsplit": pool.skipped}, f"{source} (hash split {fr})"
    if cfg.local_train and cfg.local_test:
        parts = {"train": _read(cfg, cfg.local_train), "test": _read(cfg, cfg.local_test)}
        if cfg.local_validation:
            parts["validation"] = _read(cfg, cfg.local_validation)
        return _given(cfg, parts, "local:" + ",".join(str(p) for p in given if p))
    raise ValueError(
        "dataset 'local' needs local_path=FILE (split by a hash of the text), local_dir=FOLDER "
        "(one text file per document, label = folder name), or local_train=FILE and "
        "local_test=FILE (optionally local_validation=FILE)"
    )


def _given(cfg: DataConfig, parts: dict[str, RawRows], source: str):
    if "validation" not in parts:
        parts["train"], parts["validation"] = _carve_validation(cfg, parts["train"])
        source += f" (validation: {cfg.local_split_fractions[1]:.0%} of train by text hash)"
    return parts, {name: r.skipped for name, r in parts.items()}, source


def _no_training_rows(cfg: DataConfig, train: RawRows, skipped) -> UnusableDataError:
    counts = {k: v for c in skipped.values() for k, v in c.items() if v}
    msg = f"no usable training documents in {train.path} (skipped: {counts or 'none'})"
    if counts.get("bad_utf8") or counts.get("bad_encoding"):
        msg += ". " + encoding_hint(cfg.local_encoding)
    return UnusableDataError(msg)


@register_dataset("local")
def load_local(cfg: DataConfig) -> LoadedDataset:
    """Loads local files or folders as described in the module docstring."""
    if cfg.local_name != "local" and cfg.local_name in available_datasets():
        raise ValueError(
            f"local_name {cfg.local_name!r} is the name of a registered dataset; choose another"
        )
    parts, skipped, source = _read_sources(cfg)
    class_names = label_names_from_train(parts["train"].labels)
    if not class_names:
        raise _no_training_rows(cfg, parts["train"], skipped)
    index = {name: i for i, name in enumerate(class_names)}
    splits: dict[str, Split] = {}
    for name in _SPLITS:
        r = parts[name]
        counts = skipped.setdefault(name, collections.Counter())
        bad = BadRowPolicy(cfg.bad_rows, RawRows(r.path, skipped=counts))
        texts, labels = [], []
        for i, (text, label) in enumerate(zip(r.texts, r.labels, strict=True)):
            if label not in index:
                detail = f"label {label!r} never occurs in train {class_names}"
                bad("unseen_label", r.lines[i], detail, where=r.location(i))
                continue
            texts.append(text)
            labels.append(index[label])
        splits[name] = Split(texts, np.asarray(labels, dtype=np.int32))
    skipped_json = {k: dict(v) for k, v in skipped.items()}
    return LoadedDataset(cfg.corpus_name, class_names, splits, skipped_json, source)
