"""Data pipeline: datasets (TFDS builders and local files), tokenization, sentence splitting,
vocabulary, encoding and length-bucketed batching into `attn_interp.types.Batch` arrays.

Typical use::

    ds = load_splits(DataConfig(dataset="yahoo_answers_10k"))
    vocab = build_vocabulary(ds, min_count=5)          # train + validation
    corpus = encode_corpus(ds.splits["train"], vocab, hierarchical=True)
    batches = make_batches(corpus, BatchConfig(), hierarchical=True, train=True, seed=0, epoch=0)
"""

from attn_interp.data import imdb as _imdb  # noqa: F401  (registers "imdb_50k")
from attn_interp.data import local as _local  # noqa: F401  (registers "local")
from attn_interp.data import yahoo as _yahoo  # noqa: F401  (registers "yahoo_answers_10k")
from attn_interp.data.batching import (
    BatchConfig,
    PackConfig,
    apply_training_caps,
    ladder_value,
    make_batches,
    pack_config_for,
    pack_sentences,
    padding_stats,
)
from attn_interp.data.checks import UnusableDataError, validate_for_training
from attn_interp.data.config import DataConfig
from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.encoding import EncodedCorpus, build_vocabulary, encode_corpus
from attn_interp.data.fetch import FetchError
from attn_interp.data.paper import loaders as _paper  # noqa: F401  (registers the paper's datasets)
from attn_interp.data.paper.splits import PAPER_TRAINING_CAPS, paper_batch_config
from attn_interp.data.readers import DataFormatError, normalize_label
from attn_interp.data.registry import available_datasets, load_splits, register_dataset
from attn_interp.data.sentences import split_sentences, tokenize_sentences
from attn_interp.data.text import normalize_text, tokenize
from attn_interp.data.vocabulary import Vocabulary

__all__ = [
    "BatchConfig",
    "DataConfig",
    "DataFormatError",
    "EncodedCorpus",
    "FetchError",
    "LoadedDataset",
    "PackConfig",
    "PAPER_TRAINING_CAPS",
    "Split",
    "UnusableDataError",
    "Vocabulary",
    "apply_training_caps",
    "available_datasets",
    "build_vocabulary",
    "encode_corpus",
    "ladder_value",
    "load_splits",
    "make_batches",
    "normalize_label",
    "pack_config_for",
    "pack_sentences",
    "normalize_text",
    "padding_stats",
    "paper_batch_config",
    "register_dataset",
    "split_sentences",
    "tokenize",
    "tokenize_sentences",
    "validate_for_training",
]
