"""The classifier's initial embedding matrix from word2vec trained on the dataset (cached)."""

from __future__ import annotations

import os

import numpy as np

from attn_interp.embeddings.cache import CachedVectors, cached_vectors
from attn_interp.embeddings.word2vec import (
    GensimTrainer,
    Trainer,
    Word2VecConfig,
    cache_key,
    corpus_sentences,
    read_corpus_file,
)
from attn_interp.models.word_vectors import embedding_matrix

CACHE_SUBDIR = "word2vec"


def word2vec_matrix(
    dataset,
    vocab,
    cfg: Word2VecConfig,
    cache_dir: str | os.PathLike,
    *,
    extra_corpus: str | os.PathLike | None = None,
    trainer: Trainer | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, CachedVectors]:
    """`[len(vocab), cfg.dim]` float32 matrix: row i holds the unit-norm word2vec vector of id i.

    dataset: `attn_interp.data.LoadedDataset`; vocab: its `attn_interp.data.Vocabulary`.
    cache_dir: the vectors live in ``cache_dir/word2vec``, keyed by `cache_key` (the corpus splits'
      fingerprints, the vocabulary, the extra corpus, the settings and the trainer's revision).
    extra_corpus: optional UTF-8 file of unlabeled documents, one per line, added to the corpus.
    trainer: default `GensimTrainer()` (raises ImportError naming the extra if gensim is missing).
    seed: draws the random unit rows of ids without a vector. Padding (id 0) stays zero; UNK gets
      the vector of the UNK token, which the corpus contains in place of rare words.
    """
    trainer = trainer if trainer is not None else GensimTrainer()
    extra = read_corpus_file(extra_corpus) if extra_corpus else []
    record = cache_key(dataset, vocab, cfg, trainer.revision, extra)
    folder = os.path.join(os.fspath(cache_dir), CACHE_SUBDIR)
    cached = cached_vectors(
        folder,
        dataset.name,
        record,
        lambda: trainer(corpus_sentences(dataset, vocab, cfg, extra), cfg),
    )
    ids = [vocab.token(i) for i in range(len(vocab))]
    matrix = embedding_matrix(
        ids, cached.vectors.as_dict(), cfg.dim, seed=seed, source=f"word2vec {cached.path}"
    )
    return matrix, cached
