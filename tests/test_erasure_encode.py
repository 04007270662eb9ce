"""The encoder side of erasure and follow-ups: the packed HAN encode equals the padded one, and
kernel batches hold every document once, in few fixed shapes, whatever the batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.data import BatchConfig, EncodedCorpus, make_batches
from attn_interp.data.batching import PackConfig
from attn_interp.erasure.encode import (
    KERNEL_CELLS,
    KERNEL_ROWS,
    EncodedDocs,
    encode_documents,
    kernel_batches,
    kernel_shape,
)
from attn_interp.models import ModelConfig, make_model, packing_gap

VOCAB = 30


def _han_corpus(rng, n_docs: int) -> EncodedCorpus:
    """Ragged HAN documents: 1-6 sentences of 1-12 words; the first has a 20-word sentence (longer
    than a packed row)."""
    docs = []
    for d in range(n_docs):
        lengths = rng.integers(1, 13, size=rng.integers(1, 7))
        lengths[0] = 20 if d == 0 else lengths[0]
        docs.append([rng.integers(1, VOCAB, size=k).astype(np.int32) for k in lengths])
    return EncodedCorpus(
        docs=docs,
        labels=rng.integers(0, 3, size=n_docs).astype(np.int32),
        doc_index=np.arange(n_docs, dtype=np.int64) * 2 + 5,  # split positions with gaps
        hierarchical=True,
        num_input_docs=2 * n_docs + 5,
        skipped={},
    )


def _model(arch: str, dtype):
    cfg = ModelConfig(arch, VOCAB, 3, embed_dim=6, hidden=4, param_dtype=dtype)
    model = make_model(cfg, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    state = nnx.state(model, nnx.Param)  # non-zero biases: leaks from padding would show
    nnx.update(
        model,
        jax.tree.map(lambda a: a + jnp.asarray(rng.normal(size=a.shape), a.dtype) * 0.3, state),
    )
    model.eval()
    return model


@pytest.mark.parametrize(("arch", "x64"), [("han_rnn", False), ("han_conv", True)])
def test_packed_encode_equals_padded_encode(arch, x64):
    """Every document's values, scores and logits agree between the padded and the packed
    layout (float rounding only), with its own items only and in batch order."""
    corpus = _han_corpus(np.random.default_rng(2), 7)
    batches = make_batches(corpus, BatchConfig(batch_size=8), hierarchical=True, train=False)
    with jax.enable_x64(x64):
        model = _model(arch, jnp.float64 if x64 else jnp.float32)
        pack = PackConfig(docs=8, sentences=8, width=8, gap=packing_gap(model.cfg))
        padded = encode_documents(model, batches)
        packed = encode_documents(model, batches, pack=pack)
    tol = dict(rtol=1e-10, atol=1e-12) if x64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_array_equal(packed.doc_index, padded.doc_index)
    np.testing.assert_array_equal(packed.labels, padded.labels)
    np.testing.assert_array_equal(
        padded.seq_len, [len(corpus.docs[(i - 5) // 2]) for i in padded.doc_index]
    )
    np.testing.assert_array_equal(packed.seq_len, padded.seq_len)
    assert (
        packed.values.shape == (padded.seq_len.sum(), 8)
        and packed.values.dtype == padded.values.dtype
    )
    for field in ("values", "scores", "logits"):
        np.testing.assert_allclose(getattr(packed, field), getattr(padded, field), **tol)


def _encoded(rng, seq_len) -> EncodedDocs:
    n, items = len(seq_len), int(np.sum(seq_len))
    return EncodedDocs(
        doc_index=rng.permutation(n).astype(np.int64) * 3,
        labels=rng.integers(0, 4, n).astype(np.int32),
        logits=rng.normal(size=(n, 4)).astype(np.float32),
        seq_len=np.asarray(seq_len, np.int64),
        values=rng.normal(size=(items, 5)).astype(np.float32),
        scores=rng.normal(size=items).astype(np.float32),
    )


def _per_document(batches):
    """doc_index -> (values, scores, logits, label) read back from kernel batches."""
    out = {}
    for b in batches:
        for r in np.flatnonzero(b.doc_index >= 0):
            m = b.mask[r]
            assert m[: m.sum()].all() and not m[m.sum() :].any()  # items first, then padding
            assert (b.values[r][~m] == 0).all() and (b.scores[r][~m] == 0).all()
            out[int(b.doc_index[r])] = (b.values[r][m], b.scores[r][m], b.logits[r], b.labels[r])
    return out


@pytest.mark.parametrize(
    "seq_len",
    [[1], [1, 2], [3] * 64, [3] * 65, [40] * 33, list(range(1, 300)), [1] * 40 + [1000, 4000]],
)
def test_kernel_batches_hold_every_document_once_in_ladder_shapes(seq_len):
    rng = np.random.default_rng(len(seq_len))
    docs = _encoded(rng, seq_len)
    batches = kernel_batches(docs)
    got = _per_document(batches)
    assert sorted(got) == sorted(docs.doc_index.tolist())
    for r, i in enumerate(docs.doc_index):
        lo, n = docs.offsets[r], docs.seq_len[r]
        values, scores, logits, label = got[int(i)]
        np.testing.assert_array_equal(values, docs.values[lo : lo + n])
        np.testing.assert_array_equal(scores, docs.scores[lo : lo + n])
        np.testing.assert_array_equal(logits, docs.logits[r])
        assert label == docs.labels[r]
    for b in batches:
        rows, width, _ = b.values.shape
        real = b.doc_index >= 0
        assert (rows, width) == kernel_shape(int(b.mask.sum(-1).max()))
        assert rows * width <= KERNEL_CELLS or rows == 1
        assert real[: real.sum()].all() and (b.logits[~real] == 0).all()
        assert (b.labels[~real] == 0).all() and not b.mask[~real].any()
    # one shape per width, and only the last batch of each width has filler rows
    shapes = [b.values.shape[:2] for b in batches]
    assert len(set(shapes)) == len({w for _, w in shapes})
    assert sum((b.doc_index < 0).any() for b in batches) <= len(set(shapes))
    # the batches depend on the documents, not on their order
    perm = rng.permutation(len(seq_len))
    shuffled = _reorder_items(docs, perm)
    for a, b in zip(kernel_batches(shuffled), batches, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def _reorder_items(docs: EncodedDocs, perm: np.ndarray) -> EncodedDocs:
    pieces = [np.arange(docs.offsets[r], docs.offsets[r] + docs.seq_len[r]) for r in perm]
    items = np.concatenate(pieces)
    return EncodedDocs(
        docs.doc_index[perm],
        docs.labels[perm],
        docs.logits[perm],
        docs.seq_len[perm],
        docs.values[items],
        docs.scores[items],
    )


def test_kernel_shape_ladder():
    assert kernel_shape(1) == kernel_shape(32) == (KERNEL_ROWS, 32)
    assert kernel_shape(33) == kernel_shape(128) == (KERNEL_CELLS // 128, 128)
    assert kernel_shape(129) == (KERNEL_CELLS // 512, 512)
    assert kernel_shape(5000) == (1, 8192)
    widths = [kernel_shape(n)[1] for n in range(1, 2049)]
    assert sorted(set(widths)) == [32, 128, 512, 2048]  # one kernel per width reached
