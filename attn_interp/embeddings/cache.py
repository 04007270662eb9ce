"""A folder of trained word vectors, each file keyed by the record of what produced it.

File name: ``NAME-<sha256 of the record, 16 hex>.npz`` with the words, the `[words, dim]` float32
vectors and the record itself. On reuse the stored record must equal the wanted one and the arrays
must be well-formed; otherwise the vectors are retrained and the log says why. When no file
matches, the differences to the newest file of the same NAME are logged (e.g. "the data changed").
"""

from __future__ import annotations

import glob
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from absl import logging

from attn_interp.data.fingerprint import record_digest
from attn_interp.embeddings.word2vec import WordVectors
from attn_interp.io_utils import atomic_write_npz
from attn_interp.records import record_differences


class CachedVectors(NamedTuple):
    """Vectors from the cache. reused: loaded, not trained; reason: why they were (re)trained."""

    vectors: WordVectors
    path: str
    reused: bool
    reason: str


def cache_path(folder: str | os.PathLike, name: str, record: Mapping[str, Any]) -> str:
    """Where the vectors of `record` live in `folder`."""
    return os.path.join(os.fspath(folder), f"{name}-{record_digest(record)[:16]}.npz")


def _load(path: str) -> tuple[dict[str, Any], WordVectors]:
    with np.load(path, allow_pickle=False) as f:
        record = json.loads(str(f["record"]))
        words = tuple(str(w) for w in f["words"])
        vectors = np.asarray(f["vectors"], np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or not np.all(np.isfinite(vectors)):
        raise ValueError(f"vectors of shape {vectors.shape} for {len(words)} words, or not finite")
    return record, WordVectors(words, vectors)


def _why_not_cached(folder: str, name: str, record: Mapping[str, Any]) -> str:
    others = sorted(glob.glob(os.path.join(folder, f"{name}-*.npz")), key=os.path.getmtime)
    for path in reversed(others):
        try:
            old, _ = _load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue
        diffs = record_differences(old, record)
        return f"settings or data differ from {os.path.basename(path)}: {'; '.join(diffs[:6])}"
    return "no cached vectors yet"


def cached_vectors(
    folder: str | os.PathLike,
    name: str,
    record: Mapping[str, Any],
    train: Callable[[], WordVectors],
) -> CachedVectors:
    """The vectors of `record` from `folder` if a verified file holds them, else `train()` (saved
    atomically, so an interrupted run leaves no partial file).

    record: JSON-safe description of everything that determines the vectors (see
      `word2vec.cache_key`).
    """
    folder = os.fspath(folder)
    path = cache_path(folder, name, record)
    if os.path.isfile(path):
        try:
            stored, vectors = _load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            reason = f"{path} is unreadable ({type(err).__name__}: {err})"
        else:
            if record_digest(stored) == record_digest(record):
                logging.info("word vectors: reusing %s (%d words)", path, len(vectors.words))
                return CachedVectors(vectors, path, True, "")
            reason = f"{path} holds other vectors ({'; '.join(record_differences(stored, record))})"
    else:
        reason = _why_not_cached(folder, name, record)
    logging.info("word vectors: training (%s)", reason)
    vectors = train()
    atomic_write_npz(
        path,
        {
            "words": np.asarray(vectors.words, dtype=str),
            "vectors": np.asarray(vectors.vectors, np.float32),
            "record": np.asarray(json.dumps(record, sort_keys=True)),
        },
    )
    return CachedVectors(vectors, path, False, reason)
