"""Length-bucketed batching of an `EncodedCorpus` into `attn_interp.types.Batch` arrays.

* HAN: tokens int32 `[batch, sentences, words]`; FLAN: tokens int32 `[batch, tokens]`; 0 = padding.
* Every padded dimension (rows, sentences, words / tokens) is rounded up to a multiple of
  `BatchConfig.pad_multiple`, so few distinct shapes reach `jit`. Filler rows have label 0 and
  ``doc_index == -1``.
* A batch holds at most `batch_size` documents and at most `max_cells_per_batch` padded token cells;
  a batch that would exceed the cell cap is split (a single document larger than the cap gets a batch
  of its own).
* Training: documents over the length caps (`max_sentences_per_doc`, `max_tokens_per_sentence`,
  `max_tokens_per_doc`) are dropped and counted (the paper filtered long documents from training
  only). Order: a permutation from ``(seed, epoch)``, sorted by length within chunks of
  `bucket_chunk_batches * batch_size` documents, grouped, then the batch order is shuffled.
* Evaluation: every document is kept (no caps), sorted by length, no shuffling; ``doc_index`` maps
  each row back to its position in the split.
* `pack_sentences` turns a HAN batch's tokens into `PackedSentences`: the real sentences packed end
  to end into rows (first-fit decreasing), so the word encoder scans real tokens, not padding.
  Every axis is padded up a geometric ladder (`ladder_value`) from minimums that `PackConfig`
  holds for the whole run (`pack_config_for` picks them from the corpus), so few shapes compile.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
from absl import logging

from attn_interp.data.encoding import EncodedCorpus
from attn_interp.types import Batch, PackedSentences

__all__ = [
    "BatchConfig",
    "PackConfig",
    "apply_training_caps",
    "ladder_value",
    "make_batches",
    "pack_config_for",
    "pack_sentences",
    "packed_rows",
    "packing_stats",
    "padding_stats",
]


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """Batching options (see the module docstring).

    batch_size: most documents per batch.
    pad_multiple: every padded dimension is a multiple of this.
    max_cells_per_batch: most padded token cells (rows * sentences * words, or rows * tokens).
    bucket_chunk_batches: training shuffles, then sorts by length within chunks of this many batches.
    max_sentences_per_doc, max_tokens_per_sentence, max_tokens_per_doc: training-only caps
      (None = no cap); documents over a cap are dropped from training and counted.
    pad_rows: add filler rows so the batch dimension is a multiple of `pad_multiple` (never more than
      ``max(batch_size, rows)`` rows, and only while the cell cap allows).
    """

    batch_size: int = 64
    pad_multiple: int = 8
    max_cells_per_batch: int = 1 << 17
    bucket_chunk_batches: int = 32
    max_sentences_per_doc: int | None = None
    max_tokens_per_sentence: int | None = None
    max_tokens_per_doc: int | None = None
    pad_rows: bool = True

    def __post_init__(self):
        for name in ("batch_size", "pad_multiple", "max_cells_per_batch", "bucket_chunk_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatchConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_sentences_per_doc", "max_tokens_per_sentence", "max_tokens_per_doc"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"BatchConfig.{name} must be None or >= 1, got {v}")


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def apply_training_caps(
    corpus: EncodedCorpus, cfg: BatchConfig
) -> tuple[EncodedCorpus, dict[str, int]]:
    """Drops documents over the training caps; returns the kept corpus and {reason: count}.

    A document over several caps is counted once, under the first: ``too_many_sentences``,
    ``sentence_too_long``, ``too_many_tokens``.
    """
    keep = np.ones(len(corpus), dtype=bool)
    dropped: collections.Counter[str] = collections.Counter()
    checks = []
    if corpus.hierarchical and cfg.max_sentences_per_doc is not None:
        checks.append(("too_many_sentences", corpus.num_sentences() > cfg.max_sentences_per_doc))
    if corpus.hierarchical and cfg.max_tokens_per_sentence is not None:
        checks.append(
            ("sentence_too_long", corpus.max_sentence_length() > cfg.max_tokens_per_sentence)
        )
    if cfg.max_tokens_per_doc is not None:
        checks.append(("too_many_tokens", corpus.num_tokens() > cfg.max_tokens_per_doc))
    for reason, over in checks:
        newly = over & keep
        if newly.any():
            dropped[reason] = int(newly.sum())
        keep &= ~over
    return (corpus if keep.all() else corpus.select(keep)), dict(dropped)


def _sort_order(ns: np.ndarray, mw: np.ndarray, positions: np.ndarray, m: int) -> np.ndarray:
    """`positions` stably sorted by padded sentence count, then longest sentence.

    FLAN documents have ``ns == 1`` and ``mw`` = tokens. Keying on the *padded* sentence count lets
    documents that share a sentence bucket be ordered by sentence length (measured on
    yahoo_answers_10k train: 85% padded cells vs 90% with the raw sentence count as first key).
    """
    return positions[np.lexsort((mw[positions], -(-ns[positions] // m)))]


def _group(
    hierarchical: bool, ns: np.ndarray, mw: np.ndarray, order: np.ndarray, cfg: BatchConfig
) -> list[np.ndarray]:
    """Greedy grouping of documents (in `order`) under the row and padded-cell caps."""
    m = cfg.pad_multiple
    groups: list[np.ndarray] = []
    current: list[int] = []
    s_max = w_max = 0
    for d in order:
        s_new, w_new = max(s_max, int(ns[d])), max(w_max, int(mw[d]))
        cells = (len(current) + 1) * _round_up(w_new, m)
        if hierarchical:
            cells *= _round_up(s_new, m)
        if current and (len(current) >= cfg.batch_size or cells > cfg.max_cells_per_batch):
            groups.append(np.asarray(current, dtype=np.int64))
            current, s_new, w_new = [], int(ns[d]), int(mw[d])
        current.append(int(d))
        s_max, w_max = s_new, w_new
    if current:
        groups.append(np.asarray(current, dtype=np.int64))
    return groups


def _assemble(corpus: EncodedCorpus, group: np.ndarray, cfg: BatchConfig) -> Batch:
    m = cfg.pad_multiple
    rows = len(group)
    docs = [corpus.docs[i] for i in group]
    if corpus.hierarchical:
        s_pad = _round_up(max(len(d) for d in docs), m)
        w_pad = _round_up(max(len(s) for d in docs for s in d), m)
        per_row = s_pad * w_pad
    else:
        t_pad = _round_up(max(len(d) for d in docs), m)
        per_row = t_pad
    rows_pad = rows
    if cfg.pad_rows:
        candidate = min(_round_up(rows, m), max(cfg.batch_size, rows))
        if candidate * per_row <= cfg.max_cells_per_batch:
            rows_pad = candidate
    if corpus.hierarchical:
        tokens = np.zeros((rows_pad, s_pad, w_pad), dtype=np.int32)
        for r, d in enumerate(docs):
            for s, sent in enumerate(d):
                tokens[r, s, : len(sent)] = sent
    else:
        tokens = np.zeros((rows_pad, t_pad), dtype=np.int32)
        for r, d in enumerate(docs):
            tokens[r, : len(d)] = d
    labels = np.zeros(rows_pad, dtype=np.int32)
    labels[:rows] = corpus.labels[group]
    doc_index = np.full(rows_pad, -1, dtype=np.int64)
    doc_index[:rows] = corpus.doc_index[group]
    return Batch(tokens=tokens, labels=labels, doc_index=doc_index)


def make_batches(
    corpus: EncodedCorpus,
    cfg: BatchConfig,
    *,
    hierarchical: bool,
    train: bool,
    seed: int = 0,
    epoch: int = 0,
) -> list[Batch]:
    """Batches `corpus` for training (caps, shuffled buckets) or evaluation (all docs, sorted).

    Returns a list of `Batch`; see the module docstring for shapes, padding and ordering.
    """
    if corpus.hierarchical != hierarchical:
        kind = "HAN (hierarchical)" if corpus.hierarchical else "FLAN (flat)"
        raise ValueError(
            f"corpus was encoded for {kind} but make_batches got hierarchical={hierarchical}; "
            "encode_corpus and make_batches must use the same hierarchical flag"
        )
    if train:
        corpus, dropped = apply_training_caps(corpus, cfg)
        for reason, count in dropped.items():
            logging.info("training caps: dropped %d documents (%s)", count, reason)
    if len(corpus) == 0:
        return []
    ns, mw = corpus.num_sentences(), corpus.max_sentence_length()
    positions = np.arange(len(corpus), dtype=np.int64)
    if train:
        rng = np.random.default_rng([int(seed), int(epoch)])
        positions = rng.permutation(positions)
        chunk = cfg.bucket_chunk_batches * cfg.batch_size
        order = np.concatenate(
            [
                _sort_order(ns, mw, positions[i : i + chunk], cfg.pad_multiple)
                for i in range(0, len(positions), chunk)
            ]
        )
        groups = _group(hierarchical, ns, mw, order, cfg)
        groups = [groups[i] for i in rng.permutation(len(groups))]
    else:
        groups = _group(hierarchical, ns, mw, _sort_order(ns, mw, positions, cfg.pad_multiple), cfg)
    m = cfg.pad_multiple
    for g in groups:
        d = int(g[0])
        cells = _round_up(int(mw[d]), m) * (_round_up(int(ns[d]), m) if hierarchical else 1)
        if len(g) == 1 and cells > cfg.max_cells_per_batch:
            logging.warning(
                "document %d alone exceeds max_cells_per_batch=%d; it gets its own batch",
                int(corpus.doc_index[d]),
                cfg.max_cells_per_batch,
            )
    return [_assemble(corpus, g, cfg) for g in groups]


def padding_stats(batches: list[Batch]) -> dict[str, float]:
    """Real vs padded token cells over `batches`: {"real", "cells", "padding_fraction"}."""
    real = sum(int((b.tokens != 0).sum()) for b in batches)
    cells = sum(int(b.tokens.size) for b in batches)
    return {
        "real": float(real),
        "cells": float(cells),
        "padding_fraction": 1.0 - real / cells if cells else 0.0,
    }


def ladder_value(n: int, ratio: float, start: int = 8) -> int:
    """Smallest ladder value >= n; the ladder is start, then round_up(prev * ratio, start)."""
    if ratio <= 1.0:
        raise ValueError(f"shape ladder ratio must be > 1 (got {ratio}); use 0 to disable it.")
    value = start
    while value < n:
        value = max(value + start, _round_up(int(value * ratio), start))
    return value


@dataclasses.dataclass(frozen=True)
class PackConfig:
    """Layout of `pack_sentences` (`attn_interp.types.PackedSentences`); one per run.

    docs: the documents axis is padded with empty documents to at least this many rows.
    sentences: the sentence axis has at least this many slots.
    width: positions per packed row, at least (more only when a sentence is longer).
    ratio: every axis goes up the ladder `ladder_value(n, ratio, minimum)` above its minimum,
      except the rows axis (see `packed_rows`).
    rows_step: the rows axis is a multiple of this (or a ratio-ladder value from 8, whichever is
      smaller): the rows are the word level's batch, whose cells scale the step.
    gap: masked positions after each sentence (`attn_interp.models.packing_gap`: half the widest
      convolution window for conv encoders, 0 otherwise).
    Minimums that cover most batches give every batch the same shape (one compilation) for little
    extra work: empty documents and sentence slots cost only the cheap sentence level.
    """

    docs: int = 64
    sentences: int = 64
    width: int = 64
    ratio: float = 2.0
    gap: int = 0
    rows_step: int = 16

    def __post_init__(self):
        for name in ("docs", "sentences", "width", "rows_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"PackConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.ratio <= 1.0 or self.gap < 0:
            raise ValueError(f"PackConfig needs ratio > 1 and gap >= 0, got {self}")


def pack_config_for(
    corpus: EncodedCorpus, batch_size: int, *, gap: int = 0, quantile: float = 0.99
) -> PackConfig:
    """The `PackConfig` of a run on `corpus`: docs = `batch_size`; sentence and width minimums =
    ladder values (from 8) covering `quantile` of the documents' sentence counts and of the
    sentence lengths (+ gap), so nearly every batch shares them."""
    counts = corpus.num_sentences()
    lengths = np.concatenate([[len(s) for s in d] for d in corpus.docs] or [[1]])
    return PackConfig(
        docs=ladder_value(batch_size, 2.0),
        sentences=ladder_value(int(np.quantile(counts, quantile)) if len(counts) else 1, 2.0),
        width=ladder_value(int(np.quantile(lengths, quantile)) + gap, 2.0),
        gap=gap,
    )


def packed_rows(used: int, cfg: PackConfig) -> int:
    """Rows of a packed batch whose sentences fill `used` rows: the smaller of the ratio ladder
    (from 8) and the next multiple of `cfg.rows_step`. A batch of 64 `yahoo_answers_10k` documents
    fills 50-90 rows of 64 positions, where the ratio-2 ladder alone pads to 128 (34% of an
    epoch's cells padding, 16% with steps of 16, for one or two more shapes)."""
    used = max(used, 1)
    return min(ladder_value(used, cfg.ratio), _round_up(used, cfg.rows_step))


def _first_fit_decreasing(lengths: np.ndarray, width: int, gap: int) -> tuple[np.ndarray, ...]:
    """Rows and offsets placing items of `lengths` (+ `gap` after each) into rows of `width`,
    longest first, each into the first row with room. Returns (row, offset, rows used)."""
    row = np.zeros(len(lengths), np.int64)
    offset = np.zeros(len(lengths), np.int64)
    free = np.zeros(len(lengths), np.int64)
    used = 0
    for k in np.argsort(-lengths, kind="stable"):
        need = int(lengths[k])
        fits = np.flatnonzero(free[:used] >= need)
        r = int(fits[0]) if len(fits) else used
        if r == used:
            free[r] = width
            used += 1
        row[k], offset[k] = r, width - free[r]
        free[r] -= need + gap
    return row, offset, used


def pack_sentences(tokens: np.ndarray, cfg: PackConfig) -> PackedSentences:
    """Packs a HAN batch's real sentences end to end into rows (see `PackedSentences`).

    tokens: int `[batch, sentences, words]`, 0 = padding; a sentence is real iff its first token is
    non-zero, and it is copied up to its last non-zero token (zeros inside stay, masked as in the
    padded layout). Documents keep their rows, sentences their slots (`doc * sentences + sentence`
    in `segment`).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 3:
        raise ValueError(
            f"pack_sentences needs [batch, sentences, words] tokens, got {tokens.shape}"
        )
    batch, n_sent, _ = tokens.shape
    real = tokens[:, :, 0] != 0
    present = np.flatnonzero(real.any(0))
    docs = ladder_value(batch, cfg.ratio, cfg.docs)
    sentences = ladder_value(int(present[-1]) + 1 if len(present) else 1, cfg.ratio, cfg.sentences)
    last = tokens.shape[2] - np.argmax((tokens != 0)[:, :, ::-1], axis=-1)
    inside = (np.arange(tokens.shape[2]) < last[..., None]) & real[:, :, None]
    doc_i, sent_i = np.nonzero(real)
    lengths = last[doc_i, sent_i]
    width = ladder_value(int(lengths.max(initial=1)), cfg.ratio, cfg.width)
    row, offset, used = _first_fit_decreasing(lengths, width, cfg.gap)
    rows = packed_rows(used, cfg)
    words = np.zeros((rows, width), np.int32)
    segment = np.full((rows, width), docs * sentences, np.int32)
    which = np.full(real.shape, -1, np.int64)
    which[doc_i, sent_i] = np.arange(len(doc_i))
    d, s, w = np.nonzero(inside)
    k = which[d, s]
    col = offset[k] + w
    words[row[k], col] = tokens[d, s, w]
    segment[row[k], col] = d * sentences + s
    sentence_mask = np.zeros((docs, sentences), bool)
    sentence_mask[:batch, :n_sent] = real[:, :sentences]
    return PackedSentences(words=words, segment=segment, sentence_mask=sentence_mask)


def packing_stats(batches: list[Batch], cfg: PackConfig) -> dict[str, float]:
    """Padding and distinct shapes of `batches` padded (as they are) and packed with `cfg`.

    Returns {"padded_cells", "packed_cells", "real", "padded_waste", "packed_waste",
    "padded_shapes", "packed_shapes"}: waste = 1 - real tokens / cells of the word level.
    """
    real = padded = packed_cells = 0
    padded_shapes, packed_shapes = set(), set()
    for b in batches:
        p = pack_sentences(b.tokens, cfg)
        real += int(np.count_nonzero(p.words))
        padded += int(b.tokens.size)
        packed_cells += int(p.words.size)
        padded_shapes.add(b.tokens.shape)
        packed_shapes.add(p.words.shape + p.sentence_mask.shape)
    return {
        "real": float(real),
        "padded_cells": float(padded),
        "packed_cells": float(packed_cells),
        "padded_waste": 1.0 - real / padded if padded else 0.0,
        "packed_waste": 1.0 - real / packed_cells if packed_cells else 0.0,
        "padded_shapes": float(len(padded_shapes)),
        "packed_shapes": float(len(packed_shapes)),
    }
