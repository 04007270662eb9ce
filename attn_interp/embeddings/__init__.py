"""Word embeddings trained on the corpus itself: word2vec (gensim, an optional extra), cached
by the data fingerprint and settings, turned into a classifier's initial embedding matrix."""

from attn_interp.embeddings.cache import CachedVectors, cache_path, cached_vectors
from attn_interp.embeddings.matrix import word2vec_matrix
from attn_interp.embeddings.word2vec import (
    GENSIM_EXTRA,
    GensimTrainer,
    Trainer,
    Word2VecConfig,
    WordVectors,
    cache_key,
    corpus_sentences,
    read_corpus_file,
)

__all__ = [
    "GENSIM_EXTRA",
    "CachedVectors",
    "GensimTrainer",
    "Trainer",
    "Word2VecConfig",
    "WordVectors",
    "cache_key",
    "cache_path",
    "cached_vectors",
    "corpus_sentences",
    "read_corpus_file",
    "word2vec_matrix",
]
