"""word2vec trained on a corpus' own text (paper_notes.md §1.7), with gensim as an optional extra.

The paper trained gensim 3.x word2vec with its defaults (CBOW, window 5, 5 negative samples,
5 epochs), dimension 200 and min_count 0 on the train + dev sentences after replacing words
outside the classifier's vocabulary by UNK, so every vocabulary word (and UNK) gets a vector.
`Word2VecConfig` defaults to exactly that; `corpus_sentences` builds those sentences.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
from absl import logging

GENSIM_EXTRA = "word2vec"  # setup.cfg extra that installs gensim
_MAX_SENTENCE_TOKENS = 10000  # gensim's word2vec ignores tokens past this per sentence


@dataclasses.dataclass(frozen=True)
class Word2VecConfig:
    """Settings of a word2vec run (gensim names in brackets).

    dim: vector size [vector_size]; the launcher sets it to `ModelConfig.embed_dim` (200).
    skip_gram: True = skip-gram [sg=1]; False = CBOW, the paper's (gensim 3.x default).
    window: context words on each side [window]; negative: negative samples [negative].
    min_count: words seen fewer times are dropped [min_count]; 0 as in the paper (rare words are
      already UNK, so every vocabulary word is kept).
    epochs: passes over the corpus [epochs]; the paper's Yahoo/IMDB vectors used gensim's 5.
    sample: down-sampling threshold of frequent words [sample]; alpha: initial step [alpha].
    seed: initial vectors and sampling [seed]; workers: threads [workers]. With one worker the
      vectors are the same on every run; more are faster but order-dependent (not reproducible).
    splits: the dataset splits whose texts are the corpus (train + validation, as the paper's
      vocabulary and vectors; the test split is never used).
    """

    dim: int = 200
    skip_gram: bool = False
    window: int = 5
    negative: int = 5
    min_count: int = 0
    epochs: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    seed: int = 1
    workers: int = 1
    splits: tuple[str, ...] = ("train", "validation")

    def __post_init__(self):
        object.__setattr__(self, "splits", tuple(self.splits))
        positive = {"dim": self.dim, "window": self.window, "epochs": self.epochs}
        positive["workers"] = self.workers
        bad = {k: v for k, v in positive.items() if v < 1}
        if bad or self.negative < 0 or self.min_count < 0 or not self.splits:
            raise ValueError(
                f"Word2VecConfig: dim, window, epochs and workers must be >= 1, negative and "
                f"min_count >= 0, splits non-empty (got {dataclasses.asdict(self)})."
            )


class WordVectors(NamedTuple):
    """Trained vectors: `vectors[i]` (float32 `[dim]`) belongs to `words[i]`."""

    words: tuple[str, ...]
    vectors: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """word -> `[dim]` vector."""
        return dict(zip(self.words, self.vectors, strict=True))


class Trainer(Protocol):
    """Trains vectors on sentences; `revision` names the implementation (part of the cache key)."""

    revision: str

    def __call__(self, sentences: Sequence[Sequence[str]], cfg: Word2VecConfig) -> WordVectors: ...


class GensimTrainer:
    """gensim's `Word2Vec` (the `word2vec` extra: ``pip install -e '.[word2vec]'``)."""

    def __init__(self):
        try:
            import gensim
        except ImportError as err:
            raise ImportError(
                "word2vec embeddings (--embeddings=word2vec; the default of the paper's presets "
                "and of HAN-rnn on small corpora) need gensim: install the optional extra with "
                f"`pip install -e '.[{GENSIM_EXTRA}]'` (or `pip install gensim`), or pass "
                "--embeddings=random."
            ) from err
        self.revision = f"gensim {gensim.__version__}"

    def __call__(self, sentences: Sequence[Sequence[str]], cfg: Word2VecConfig) -> WordVectors:
        from gensim.models import Word2Vec

        tokens = sum(len(s) for s in sentences)
        logging.info(
            "word2vec (%s): %d sentences, %d tokens, %s",
            self.revision,
            len(sentences),
            tokens,
            cfg,
        )
        model = Word2Vec(
            sentences=sentences,
            vector_size=cfg.dim,
            sg=int(cfg.skip_gram),
            window=cfg.window,
            negative=cfg.negative,
            min_count=cfg.min_count,
            epochs=cfg.epochs,
            sample=cfg.sample,
            alpha=cfg.alpha,
            seed=cfg.seed,
            workers=cfg.workers,
        )
        words = tuple(model.wv.index_to_key)
        return WordVectors(words, np.asarray(model.wv.vectors, np.float32))


def _vocab_sentences(texts: Iterable[str], vocab) -> Iterable[list[str]]:
    from attn_interp.data import tokenize_sentences

    for text in texts:
        for sentence in tokenize_sentences(text):
            if sentence:
                ids = vocab.encode(sentence)
                for start in range(0, len(ids), _MAX_SENTENCE_TOKENS):
                    yield [vocab.token(i) for i in ids[start : start + _MAX_SENTENCE_TOKENS]]


def read_corpus_file(path: str | os.PathLike) -> list[str]:
    """Documents of an extra unlabeled corpus: UTF-8 text, one document per non-empty line."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: the embeddings corpus must be UTF-8 text ({err}).") from err


def corpus_sentences(
    dataset, vocab, cfg: Word2VecConfig, extra_texts: Sequence[str] = ()
) -> list[list[str]]:
    """Lowercased token sentences of `cfg.splits` (then `extra_texts`), words outside `vocab`
    replaced by its UNK token, as the paper's word2vec input. dataset: `LoadedDataset`;
    vocab: `attn_interp.data.Vocabulary`."""
    missing = [s for s in cfg.splits if s not in dataset.splits]
    if missing:
        raise ValueError(
            f"Word2VecConfig.splits: dataset {dataset.name} has no split(s) {missing}."
        )
    texts = [t for s in cfg.splits for t in dataset.splits[s].texts]
    return list(_vocab_sentences([*texts, *extra_texts], vocab))


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of a list of texts (their order and content)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(f"{len(text)}\t".encode())
        h.update(text.encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()


def cache_key(
    dataset, vocab, cfg: Word2VecConfig, revision: str, extra_texts: Sequence[str] = ()
) -> dict:
    """The record that identifies a word2vec run: settings, implementation, the fingerprints of
    the corpus splits, the vocabulary (rare words are UNK) and any extra corpus."""
    return {
        "format": "attn_interp.word2vec.v1",
        "dataset": dataset.name,
        "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
        "trainer": revision,
        "data_sha256": {s: dataset.splits[s].fingerprint() for s in cfg.splits},
        "vocab_sha256": texts_sha256(vocab.words),
        "extra_corpus_sha256": texts_sha256(extra_texts) if extra_texts else None,
    }
