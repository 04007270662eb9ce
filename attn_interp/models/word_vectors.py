"""Initial embedding matrices from word2vec / GloVe text-format files (paper.md §1.7)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging


def _vocab_items(vocab: Mapping[str, int] | Sequence[str]) -> tuple[int, list[tuple[str, int]]]:
    if isinstance(vocab, Mapping):
        items = [(str(w), int(i)) for w, i in vocab.items()]
        size = max((i for _, i in items), default=0) + 1
    else:
        items = [(str(w), i) for i, w in enumerate(vocab)]
        size = len(items)
    if any(i < 0 for _, i in items):
        raise ValueError("vocab ids must be non-negative.")
    return max(size, 1), [(w, i) for w, i in items if i != 0]


def load_word_vectors(
    path: str | os.PathLike,
    vocab: Mapping[str, int] | Sequence[str],
    dim: int,
    *,
    seed: int = 0,
    lowercase: bool = False,
) -> np.ndarray:
    """Builds a `[vocab_size, dim]` float32 embedding matrix from a text-format vector file.

    path: word2vec text format (an optional "count dim" header line) or GloVe format; each line
      is a word followed by `dim` numbers (the last `dim` fields are the vector, so words that
      contain spaces are kept whole).
    vocab: word -> id mapping, or a sequence whose position i holds the word of id i. Id 0 is
      padding (its row stays zero, whatever word it names); vocab_size = largest id + 1.
    lowercase: lowercase the file's words before matching (first occurrence wins).

    Every row found in the file is scaled to unit L2 norm. Words missing from the file (and words
    whose file vector is all zero) get a random direction, also of unit norm, drawn from `seed`.
    """
    vocab_size, items = _vocab_items(vocab)
    wanted: dict[str, list[int]] = {}
    for word, idx in items:
        wanted.setdefault(word, []).append(idx)
    matrix = np.zeros((vocab_size, dim), np.float64)
    found = np.zeros(vocab_size, bool)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.rstrip("\n").rstrip().split(" ")
            if not fields or fields == [""]:
                continue
            if line_no == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                if int(fields[1]) != dim:
                    raise ValueError(
                        f"{path}: header says the vectors are {fields[1]}-d, but dim={dim}; pass "
                        "the file's dimension or use a file that matches ModelConfig.embed_dim."
                    )
                continue
            if len(fields) < dim + 1:
                raise ValueError(
                    f"{path}:{line_no}: expected a word and {dim} numbers, got {len(fields)} "
                    "fields; is the file in word2vec/GloVe text format with this dimension?"
                )
            word = " ".join(fields[:-dim])
            if lowercase:
                word = word.lower()
            ids = wanted.get(word)
            if ids is None or found[ids[0]]:
                continue
            try:
                vector = np.asarray(fields[-dim:], dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"{path}:{line_no}: non-numeric vector entry ({err}).") from err
            norm = np.linalg.norm(vector)
            if not np.isfinite(norm) or norm == 0.0:
                continue
            matrix[ids] = vector / norm
            found[ids] = True
    found[0] = True  # padding stays zero
    missing = np.flatnonzero(~found)
    rng = np.random.default_rng(seed)
    random_rows = rng.normal(size=(missing.size, dim))
    matrix[missing] = random_rows / np.linalg.norm(random_rows, axis=1, keepdims=True)
    logging.info(
        "load_word_vectors: %d of %d vocabulary words found in %s; %d got random unit vectors.",
        vocab_size - 1 - missing.size,
        vocab_size - 1,
        path,
        missing.size,
    )
    return matrix.astype(np.float32)
