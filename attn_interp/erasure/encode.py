"""A trained run's documents as attention inputs for the erasure and follow-up kernels.

Two steps, shared by `attn_interp.erasure.evaluate_run` and the follow-up stage:

* `encode_documents`: the trained model up to the erased attention layer on the run's evaluation
  batches (HAN documents in the packed layout the training uses, `encoder_pack_config`), cut
  back to each document's own items (`EncodedDocs`).
* `kernel_batches`: those documents regrouped by item count into `KernelBatch`es whose shapes
  come from one fixed ladder (`kernel_shape`: widths 32, 128, 512, ... and fewer rows as the
  width grows), so a split compiles one erasure (or follow-up) kernel per width it reaches
  (yahoo_answers_10k: 3 for HAN, 4 for FLAN), whatever its mix of lengths and batch sizes.

Every kernel and the forward pass take the model's parameters as dynamic arguments, so JAX's
persistent compilation cache (turned on by `experiments.cli.launch`) serves a re-run, or another
model of the same architecture, without compiling.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from attn_interp import parallel
from attn_interp.data.batching import PackConfig, ladder_value, pack_sentences
from attn_interp.types import AttentionInputs, Batch, PackedSentences

__all__ = [
    "KERNEL_CELLS",
    "KERNEL_ROWS",
    "KERNEL_WIDTH_RATIO",
    "KERNEL_WIDTH_START",
    "EncodedDocs",
    "KernelBatch",
    "ShapeTimer",
    "data_fingerprint",
    "encode_documents",
    "encoder_pack_config",
    "forward",
    "kernel_batches",
    "kernel_shape",
    "params_fingerprint",
    "split_batches",
]

# Kernel batches hold at most KERNEL_ROWS documents and KERNEL_CELLS item cells (rows x width),
# on a coarse width ladder: compiling one erasure kernel costs seconds to a minute on a CPU, while
# running it on a batch takes milliseconds, so padding documents up to 4x longer costs far less
# than compiling more widths.
KERNEL_ROWS = 64
KERNEL_CELLS = 4096
KERNEL_WIDTH_START = 32
KERNEL_WIDTH_RATIO = 4.0
# Minimum sentence slots and packed-row width of the HAN encoder's packed layout: the training
# corpora's 99% quantiles (yahoo_answers_10k: 38 sentences, 64 words), fixed so that every
# evaluated split, block and model shares the same few encoder shapes.
_PACK_SENTENCES = 64
_PACK_WIDTH = 64
# Packed word rows are padded to at least this many cells (rows x width): evaluation batches are
# cut by padded cells, so their real tokens vary, and without a floor every row count compiles.
_PACK_CELLS = 8192


def params_fingerprint(model: nnx.Module) -> str:
    """sha256 of every `nnx.Param` of `model` (dtype, shape and bytes, in state order)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def data_fingerprint(texts: Sequence[str], labels: np.ndarray) -> str:
    """sha256 of a split's documents and labels (`attn_interp.data.dataset.split_fingerprint`)."""
    from attn_interp.data.dataset import split_fingerprint

    return split_fingerprint(texts, labels)


@nnx.jit
def forward(model: nnx.Module, tokens: Any) -> tuple[AttentionInputs, jax.Array]:
    """tokens -> (AttentionInputs of the erased layer, full-model logits `[batch, C]`).

    tokens: int `[batch, sentences, words]` (HAN), `[batch, tokens]` (FLAN), or a HAN batch as
    `PackedSentences` (then batch and items are its `sentence_mask` axes). The inputs hold values
    `[batch, items, d]`, scores `[batch, items]`, mask bool `[batch, items]`. Module level, so
    every run of the same architecture shares the compilations.
    """
    from attn_interp.models import masked_softmax

    inputs = model.encode(tokens)
    return inputs, model.head(inputs.values, masked_softmax(inputs.scores, inputs.mask))


def encoder_pack_config(run: Any) -> PackConfig | None:
    """The packed layout of a HAN run's encoder (None for FLAN runs).

    Documents axis: the run's batch size up the ladder; sentence slots and row width: fixed
    minimums (`_PACK_SENTENCES`, `_PACK_WIDTH`) that the ladder raises only for the rare longer
    documents and sentences.
    """
    if not run.model_config.hierarchical:
        return None
    from attn_interp.models import packing_gap

    return PackConfig(
        docs=ladder_value(run.train_config.batch_size, 2.0),
        sentences=_PACK_SENTENCES,
        width=_PACK_WIDTH,
        gap=packing_gap(run.model_config),
        rows_step=_PACK_CELLS // _PACK_WIDTH,  # rows on the ratio ladder up to the cell floor
    )


def split_batches(run: Any, split: Any, lo: int, hi: int) -> tuple[Any, list[Batch]]:
    """Documents [lo, hi) of `split` (an `attn_interp.data.Split`) encoded with the run's
    vocabulary (doc_index = split positions; documents without tokens are skipped) and batched
    as the run evaluates (its `BatchConfig` and shape ladder). Returns (EncodedCorpus, batches).
    """
    import dataclasses

    from attn_interp import data as data_lib
    from attn_interp.data.shapes import batch_config, bucket_batches

    hier = run.model_config.hierarchical
    chunk = data_lib.Split(list(split.texts[lo:hi]), split.labels[lo:hi])
    part = data_lib.encode_corpus(chunk, run.vocab, hierarchical=hier)
    part = dataclasses.replace(part, doc_index=part.doc_index + lo)
    if not len(part):
        return part, []
    cfg = batch_config(run.train_config)
    batches = data_lib.make_batches(part, cfg, hierarchical=hier, train=False)
    return part, bucket_batches(batches, run.train_config.shape_ladder_ratio)


class ShapeTimer:
    """Runs a function; the first call per key (an input shape) is a warm-up that compiles and
    is not timed. `seconds` sums the timed calls."""

    def __init__(self) -> None:
        self.seen: set = set()
        self.seconds = 0.0

    def __call__(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        if key not in self.seen:
            self.seen.add(key)
            jax.block_until_ready(fn())  # compile + warm caches
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        self.seconds += time.perf_counter() - start
        return out


class EncodedDocs(NamedTuple):
    """Encoder outputs of documents, each cut to its own items; items of all documents are
    concatenated in document order (document r owns rows `offsets[r]:offsets[r] + seq_len[r]`).

    doc_index: int64 `[docs]` split positions; labels: int32 `[docs]`;
    logits: float32 `[docs, C]` full-model logits; seq_len: int64 `[docs]` items per document;
    values: `[items, d]`; scores: `[items]` attention scores.
    """

    doc_index: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    seq_len: np.ndarray
    values: np.ndarray
    scores: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """int64 `[docs]` first item row of each document."""
        return np.concatenate([[0], np.cumsum(self.seq_len)[:-1]]).astype(np.int64)


def _pad_packed_rows(packed: PackedSentences, cells: int) -> PackedSentences:
    """`packed` with empty word rows added up to `cells // width` rows (no token: the rows are
    masked and belong to no sentence)."""
    rows, width = packed.words.shape
    extra = max(cells // width - rows, 0)
    if not extra:
        return packed
    no_sentence = packed.sentence_mask.size  # the segment id of positions without a token
    return PackedSentences(
        words=np.pad(packed.words, ((0, extra), (0, 0))),
        segment=np.pad(packed.segment, ((0, extra), (0, 0)), constant_values=no_sentence),
        sentence_mask=packed.sentence_mask,
    )


def _batch_tokens(batch: Batch, pack: PackConfig | None, mesh) -> tuple[Any, Hashable]:
    """(model input of `batch`, its shape key). With a mesh: padded rows sharded over it
    (packed rows would mix documents of several devices); else packed when `pack` is given."""
    tokens = np.asarray(batch.tokens)
    if mesh is not None:
        (tokens,) = parallel.pad_rows(parallel.data_size(mesh), tokens, fill=(0,))
        (tokens,) = parallel.shard_rows(mesh, tokens)
        return tokens, tokens.shape
    if pack is not None and tokens.ndim == 3:
        packed = _pad_packed_rows(pack_sentences(tokens, pack), _PACK_CELLS)
        return packed, tuple(a.shape for a in packed)
    return tokens, tokens.shape


def encode_documents(
    model: nnx.Module,
    batches: Sequence[Batch],
    *,
    pack: PackConfig | None = None,
    timer: Callable[[Hashable, Callable[[], Any]], Any] | None = None,
    mesh=None,
) -> EncodedDocs:
    """`forward` on every batch; the real documents (doc_index >= 0) with their real items.

    batches: `make_batches` output (HAN `[batch, sentences, words]`, FLAN `[batch, tokens]`);
    pack: HAN batches go to the model as `PackedSentences` (`encoder_pack_config`; ignored with
    a mesh); timer: `timer(shape_key, fn)` runs each forward (e.g. a `ShapeTimer`).
    Documents keep the order of `batches`.
    """
    run = timer or (lambda _key, fn: fn())
    parts = []
    for batch in batches:
        tokens, key = _batch_tokens(batch, pack, mesh)
        inputs, logits = run(key, lambda t=tokens: forward(model, t))
        doc_index = np.asarray(batch.doc_index)
        real = np.flatnonzero(doc_index >= 0)
        mask = np.asarray(inputs.mask)[real]
        parts.append(
            EncodedDocs(
                doc_index=doc_index[real].astype(np.int64),
                labels=np.asarray(batch.labels, np.int32)[real],
                logits=np.asarray(logits, np.float32)[real],
                seq_len=mask.sum(-1).astype(np.int64),
                values=np.asarray(inputs.values)[real][mask],
                scores=np.asarray(inputs.scores)[real][mask],
            )
        )
    if not parts:
        raise ValueError("encode_documents got no batches.")
    return EncodedDocs(*(np.concatenate(f) for f in zip(*parts, strict=True)))


def kernel_shape(items: int) -> tuple[int, int]:
    """(rows, width) of the kernel batch that holds documents of up to `items` items: width =
    the ladder 32, 128, 512, ... (KERNEL_WIDTH_START, times KERNEL_WIDTH_RATIO) value >= items;
    rows = KERNEL_ROWS, halved while rows x width exceeds KERNEL_CELLS (at least 1)."""
    width = ladder_value(max(int(items), 1), KERNEL_WIDTH_RATIO, KERNEL_WIDTH_START)
    rows = KERNEL_ROWS
    while rows > 1 and rows * width > KERNEL_CELLS:
        rows //= 2
    return rows, width


class KernelBatch(NamedTuple):
    """Documents in one kernel shape (`kernel_shape`); rows past the documents are fillers.

    values: `[rows, width, d]` (0 at padding); scores: `[rows, width]` (0 at padding);
    mask: bool `[rows, width]`; logits: float32 `[rows, C]`; labels: int32 `[rows]`;
    doc_index: int64 `[rows]`, -1 for filler rows.
    """

    values: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    doc_index: np.ndarray


def _groups(seq_len: np.ndarray, doc_index: np.ndarray) -> list[np.ndarray]:
    """Documents (positions in `seq_len`) by ascending item count, then split position, cut into
    consecutive groups that each fit the kernel shape of their longest document."""
    order = np.lexsort((doc_index, seq_len))
    groups, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and stop - start < kernel_shape(seq_len[order[stop]])[0]:
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


def _assemble(docs: EncodedDocs, group: np.ndarray) -> KernelBatch:
    rows, width = kernel_shape(int(docs.seq_len[group].max()))
    lengths = docs.seq_len[group]
    row = np.repeat(np.arange(len(group)), lengths)
    col = np.arange(row.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    src = np.repeat(docs.offsets[group], lengths) + col
    values = np.zeros((rows, width, docs.values.shape[-1]), docs.values.dtype)
    values[row, col] = docs.values[src]
    scores = np.zeros((rows, width), docs.scores.dtype)
    scores[row, col] = docs.scores[src]
    mask = np.zeros((rows, width), bool)
    mask[row, col] = True
    logits = np.zeros((rows, docs.logits.shape[-1]), np.float32)
    logits[: len(group)] = docs.logits[group]
    labels = np.zeros(rows, np.int32)
    labels[: len(group)] = docs.labels[group]
    doc_index = np.full(rows, -1, np.int64)
    doc_index[: len(group)] = docs.doc_index[group]
    return KernelBatch(values, scores, mask, logits, labels, doc_index)


def kernel_batches(docs: EncodedDocs) -> list[KernelBatch]:
    """`docs` regrouped into kernel batches of the fixed shapes of `kernel_shape`, shortest
    documents first (ties by split position), so the batches depend only on the documents."""
    return [_assemble(docs, g) for g in _groups(docs.seq_len, docs.doc_index)]
