"""Initial embedding matrices from word vectors (paper_notes.md §1.7): a text-format file
(word2vec / GloVe) or vectors already in memory (e.g. word2vec trained on the corpus)."""

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


def embedding_matrix(
    vocab: Mapping[str, int] | Sequence[str],
    vectors: Mapping[str, np.ndarray],
    dim: int,
    *,
    seed: int = 0,
    source: str = "word vectors",
) -> np.ndarray:
    """A `[vocab_size, dim]` float32 embedding matrix: row i is the unit-norm vector of word i.

    vocab: word -> id mapping, or a sequence whose position i holds the word of id i. Id 0 is
      padding (its row stays zero, whatever word it names); vocab_size = largest id + 1.
    vectors: word -> `[dim]` vector. Words of the vocabulary without a vector here (and words
      whose vector is zero or not finite) get a random direction of unit norm drawn from `seed`,
      in id order, so the same vocabulary and seed give the same rows.
    source: named in the log line that counts the words found.
    """
    vocab_size, items = _vocab_items(vocab)
    matrix = np.zeros((vocab_size, dim), np.float64)
    found = np.zeros(vocab_size, bool)
    for word, idx in items:
        vector = vectors.get(word)
        if vector is None:
            continue
        vector = np.asarray(vector, np.float64).reshape(-1)
        if vector.shape != (dim,):
            raise ValueError(
                f"{source}: the vector of {word!r} has {vector.size} numbers, not {dim}."
            )
        norm = np.linalg.norm(vector)
        if np.isfinite(norm) and norm > 0.0:
            matrix[idx] = vector / norm
            found[idx] = True
    found[0] = True  # padding stays zero
    missing = np.flatnonzero(~found)
    rng = np.random.default_rng(seed)
    random_rows = rng.normal(size=(missing.size, dim))
    matrix[missing] = random_rows / np.linalg.norm(random_rows, axis=1, keepdims=True)
    logging.info(
        "embedding_matrix: %d of %d vocabulary words found in %s; %d got random unit vectors.",
        vocab_size - 1 - missing.size,
        vocab_size - 1,
        source,
        missing.size,
    )
    return matrix.astype(np.float32)


def _read_vector_file(
    path: str | os.PathLike, wanted: set[str], dim: int, lowercase: bool
) -> dict[str, np.ndarray]:
    """The vectors of the `wanted` words in a text-format file (first non-zero occurrence wins)."""
    vectors: dict[str, np.ndarray] = {}
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
            if word not in wanted or word in vectors:
                continue
            try:
                vector = np.asarray(fields[-dim:], dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"{path}:{line_no}: non-numeric vector entry ({err}).") from err
            norm = np.linalg.norm(vector)
            if np.isfinite(norm) and norm > 0.0:
                vectors[word] = vector
    return vectors


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
    vocab: as in `embedding_matrix`.
    lowercase: lowercase the file's words before matching (first occurrence wins).

    Every row found in the file is scaled to unit L2 norm. Words missing from the file (and words
    whose file vector is all zero) get a random direction, also of unit norm, drawn from `seed`.
    """
    _, items = _vocab_items(vocab)
    vectors = _read_vector_file(path, {w for w, _ in items}, dim, lowercase)
    return embedding_matrix(vocab, vectors, dim, seed=seed, source=os.fspath(path))
