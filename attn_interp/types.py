"""Array containers shared by the data pipeline, the models and the erasure engine.

Conventions: token id 0 is padding everywhere; a HAN batch is `[batch, sentences, words]`, a FLAN
batch is `[batch, tokens]`. A sentence exists iff its first token id is non-zero. Rows that are all
padding (filler rows used to keep batch shapes fixed) have `doc_index == -1`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Batch(NamedTuple):
    """One batch of encoded documents.

    tokens: int32 `[batch, sentences, words]` (HAN) or `[batch, tokens]` (FLAN); 0 = padding.
    labels: int32 `[batch]` gold class ids (0 for filler rows).
    doc_index: int64 `[batch]` position of each document in its split; -1 for filler rows.
    """

    tokens: np.ndarray
    labels: np.ndarray
    doc_index: np.ndarray


class AttentionInputs(NamedTuple):
    """Inputs of the attention layer that feeds the classifier (the layer that is erased).

    values: `[batch, items, dim]` vectors h_i (zero at padded items).
    scores: `[batch, items]` unnormalised attention scores s_i (any value at padded items).
    mask: bool `[batch, items]`, True at real items.
    """

    values: jax.Array
    scores: jax.Array
    mask: jax.Array


class PackedSentences(NamedTuple):
    """A HAN batch whose real sentences are packed end to end into rows (the word level's layout).

    Only real tokens are stored, so the word encoder runs over about as many cells as the batch has
    tokens instead of `[docs, sentences, words]` mostly-padding cells.

    words: int32 `[rows, width]` token ids; each sentence is contiguous within one row; 0 elsewhere.
    segment: int32 `[rows, width]` sentence slot `doc * sentences + sentence` of each token, and
      `docs * sentences` at positions that hold no token (gaps between sentences, row tails).
    sentence_mask: bool `[docs, sentences]`, True at real sentences.
    """

    words: np.ndarray
    segment: np.ndarray
    sentence_mask: np.ndarray
