"""Turning texts into id sequences: `encode_corpus` and `build_vocabulary`."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable

import numpy as np
from absl import logging

from attn_interp.data.dataset import LoadedDataset, Split
from attn_interp.data.sentences import tokenize_sentences
from attn_interp.data.text import tokenize
from attn_interp.data.vocabulary import Vocabulary

__all__ = ["EncodedCorpus", "encode_corpus", "build_vocabulary"]


@dataclasses.dataclass(frozen=True)
class EncodedCorpus:
    """Encoded documents of one split.

    docs: FLAN: one int32 `[tokens]` array per document; HAN: per document a list of int32
      `[words]` arrays, one per sentence (no empty sentences).
    labels: int32 `[docs]`.
    doc_index: int64 `[docs]`, position of each document in its `Split` (skipped ones leave gaps).
    hierarchical: True for HAN documents.
    num_input_docs: documents in the split before skipping.
    skipped: {reason: count}; ``no_tokens`` = text with no tokens after normalisation.
    skipped_doc_index: positions of the skipped documents in the split.
    """

    docs: list
    labels: np.ndarray
    doc_index: np.ndarray
    hierarchical: bool
    num_input_docs: int
    skipped: dict[str, int]
    skipped_doc_index: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.docs)

    def num_sentences(self) -> np.ndarray:
        """int64 `[docs]` sentences per document (1 for FLAN documents)."""
        if not self.hierarchical:
            return np.ones(len(self.docs), dtype=np.int64)
        return np.array([len(d) for d in self.docs], dtype=np.int64)

    def max_sentence_length(self) -> np.ndarray:
        """int64 `[docs]` tokens of the longest sentence (all tokens for FLAN)."""
        if not self.hierarchical:
            return self.num_tokens()
        return np.array([max(len(s) for s in d) for d in self.docs], dtype=np.int64)

    def num_tokens(self) -> np.ndarray:
        """int64 `[docs]` tokens per document."""
        if not self.hierarchical:
            return np.array([len(d) for d in self.docs], dtype=np.int64)
        return np.array([sum(len(s) for s in d) for d in self.docs], dtype=np.int64)

    def select(self, keep: np.ndarray) -> EncodedCorpus:
        """The documents where bool `keep` `[docs]` is True (skip counts unchanged)."""
        idx = np.flatnonzero(keep)
        return dataclasses.replace(
            self,
            docs=[self.docs[i] for i in idx],
            labels=self.labels[idx],
            doc_index=self.doc_index[idx],
        )


def encode_corpus(split: Split, vocab: Vocabulary, *, hierarchical: bool) -> EncodedCorpus:
    """Tokenizes (and for HAN sentence-splits) every text of `split` and maps tokens to ids.

    Documents without any token are skipped and counted as ``no_tokens`` (never an error).
    """
    docs: list = []
    keep: list[int] = []
    skipped_idx: list[int] = []
    for i, text in enumerate(split.texts):
        if hierarchical:
            sentences = tokenize_sentences(text)
            doc = [np.asarray(vocab.encode(s), dtype=np.int32) for s in sentences if s]
            empty = not doc
        else:
            doc = np.asarray(vocab.encode(tokenize(text)), dtype=np.int32)
            empty = doc.size == 0
        if empty:
            skipped_idx.append(i)
            continue
        docs.append(doc)
        keep.append(i)
    idx = np.asarray(keep, dtype=np.int64)
    skipped = collections.Counter()
    if skipped_idx:
        skipped["no_tokens"] = len(skipped_idx)
        logging.warning(
            "skipped %d documents without tokens (first positions: %s)",
            len(skipped_idx),
            skipped_idx[:5],
        )
    return EncodedCorpus(
        docs=docs,
        labels=split.labels[idx] if len(idx) else np.zeros(0, np.int32),
        doc_index=idx,
        hierarchical=hierarchical,
        num_input_docs=len(split),
        skipped=dict(skipped),
        skipped_doc_index=tuple(skipped_idx),
    )


def build_vocabulary(
    dataset: LoadedDataset,
    *,
    min_count: int = 5,
    splits: Iterable[str] = ("train", "validation"),
) -> Vocabulary:
    """Vocabulary from the tokens of `splits` (train + validation, as in the paper)."""
    missing = [s for s in splits if s not in dataset.splits]
    if missing:
        raise ValueError(f"dataset {dataset.name} has no split(s) {missing}")
    return Vocabulary.build(
        (tokenize(t) for s in splits for t in dataset.splits[s].texts), min_count=min_count
    )
