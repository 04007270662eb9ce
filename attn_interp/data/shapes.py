"""Batch settings of a run, and coarse shape buckets for jit: pad batches up to a geometric ladder.

Every distinct batch shape costs one XLA compilation (seconds for a biGRU train step on CPU, far
more than a step itself). Padding each dimension up to the next value of a geometric ladder
(8, 16, 32, 64, ... for ratio 2) bounds the number of shapes per run at the price of some extra
padding; padding is masked everywhere, so results do not change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attn_interp.data.batching import BatchConfig, ladder_value
from attn_interp.types import Batch


def batch_config(train_cfg: Any) -> BatchConfig:
    """The `BatchConfig` of a training config (`attn_interp.train.TrainConfig`: batch size,
    padded-cell cap, length caps); erasure and follow-ups batch a run's documents with it too."""
    return BatchConfig(
        batch_size=train_cfg.batch_size,
        max_cells_per_batch=train_cfg.max_cells_per_batch,
        max_sentences_per_doc=train_cfg.max_sentences_per_doc,
        max_tokens_per_sentence=train_cfg.max_tokens_per_sentence,
    )


def bucket_batch(batch: Batch, ratio: float) -> Batch:
    """Pads rows (filler rows, doc_index -1), and every token dimension, up to ladder values.

    tokens `[batch, sentences, words]` or `[batch, tokens]`; ratio 0 returns the batch unchanged.
    """
    if not ratio:
        return batch
    shape = batch.tokens.shape
    target = tuple(ladder_value(n, ratio) for n in shape)
    if target == shape:
        return batch
    tokens = np.zeros(target, dtype=batch.tokens.dtype)
    tokens[tuple(slice(0, n) for n in shape)] = batch.tokens
    rows, new_rows = shape[0], target[0]
    labels = np.zeros(new_rows, dtype=batch.labels.dtype)
    labels[:rows] = batch.labels
    doc_index = np.full(new_rows, -1, dtype=batch.doc_index.dtype)
    doc_index[:rows] = batch.doc_index
    return Batch(tokens=tokens, labels=labels, doc_index=doc_index)


def bucket_batches(batches: list[Batch], ratio: float) -> list[Batch]:
    """`bucket_batch` applied to each batch."""
    return [bucket_batch(b, ratio) for b in batches]
