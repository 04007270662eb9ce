"""The fast recurrent paths against a frozen copy of the implementation they replaced.

`_reference_*` below is the code the models ran before the one-scan biGRU and the packed HAN word
level (two masked scans, every sentence padded to the batch's longest): outputs AND gradients of
every architecture must equal it, in float32 and float64, and packing must not depend on padding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.data.batching import PackConfig, pack_sentences
from attn_interp.models import ModelConfig, make_model
from attn_interp.models.attention import masked_softmax, segment_softmax, weighted_sum
from attn_interp.models.encoders import packing_gap
from attn_interp.models.gru import BiGRU, bigru_scan

VOCAB, CLASSES = 40, 3


# ------------------------------------------------------------ frozen reference (previous code)


def _reference_gru_scan(input_proj, mask, kernel_hh, bias_hh, *, reverse):
    batch, _, three_h = input_proj.shape
    h0 = jnp.zeros((batch, three_h // 3), input_proj.dtype)

    def step(h, inputs):
        xp, m = inputs
        hp = h @ kernel_hh + bias_hh
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h_new = (1.0 - z) * n + z * h
        m = m[:, None]
        return jnp.where(m, h_new, h), jnp.where(m, h_new, 0.0)

    xs = (jnp.swapaxes(input_proj, 0, 1), jnp.swapaxes(mask, 0, 1))
    _, outputs = jax.lax.scan(step, h0, xs, reverse=reverse)
    return jnp.swapaxes(outputs, 0, 1)


def _reference_encoder(encoder, x, mask):
    if not isinstance(encoder, BiGRU):
        return encoder(x, mask)  # conv / identity encoders are unchanged
    outs = [
        _reference_gru_scan(
            x @ d.kernel_ih[...] + d.bias_ih[...],
            mask,
            d.kernel_hh[...],
            d.bias_hh[...],
            reverse=reverse,
        )
        for d, reverse in ((encoder.forward, False), (encoder.backward, True))
    ]
    return jnp.concatenate(outs, axis=-1)


def _reference_logits(model, tokens):
    tokens = jnp.asarray(tokens)
    if not model.hierarchical:
        mask = tokens != 0
        values = _reference_encoder(model.token_encoder, model.embed(tokens), mask)
        weights = masked_softmax(model.token_attention(values), mask)
        return model.head(values, weights)
    batch, sentences, words = tokens.shape
    sentence_mask = tokens[:, :, 0] != 0
    flat_mask = ((tokens != 0) & sentence_mask[:, :, None]).reshape(batch * sentences, words)
    x = model.embed(tokens).reshape(batch * sentences, words, -1)
    h_words = _reference_encoder(model.word_encoder, x, flat_mask)
    word_weights = masked_softmax(model.word_attention(h_words), flat_mask)
    vectors = weighted_sum(h_words, word_weights).reshape(batch, sentences, -1)
    values = _reference_encoder(model.sentence_encoder, vectors, sentence_mask)
    weights = masked_softmax(model.sentence_attention(values), sentence_mask)
    return model.head(values, weights)


# ------------------------------------------------------------ fixtures


def _model(arch, dtype, seed=0):
    cfg = ModelConfig(arch, VOCAB, CLASSES, embed_dim=6, hidden=4, param_dtype=dtype)
    model = make_model(cfg, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed + 1)
    # Non-zero biases (GRU b_hn, attention, convolutions) and padding row: leaks would show.
    state = nnx.state(model, nnx.Param)
    noisy = jax.tree.map(lambda a: a + jnp.asarray(0.3 * rng.normal(size=a.shape), a.dtype), state)
    nnx.update(model, noisy)
    model.eval()
    return model


def _han_tokens(rng, batch=5, sentences=6, words=9, interior_zeros=False):
    """Prefix-padded HAN tokens, ragged in both axes, with one filler document."""
    toks = rng.integers(1, VOCAB, size=(batch, sentences, words))
    n_sent = rng.integers(1, sentences + 1, size=batch)
    n_words = rng.integers(1, words + 1, size=(batch, sentences))
    n_words[0, 0] = words  # one sentence fills the width
    n_words[1, :] = 1  # one-token sentences
    toks[np.arange(words)[None, None, :] >= n_words[..., None]] = 0
    toks[np.arange(sentences)[None, :] >= n_sent[:, None]] = 0
    if interior_zeros:  # masked steps inside sentences: the models skip them (state carried)
        toks[:, :, 1:][rng.random(toks[:, :, 1:].shape) < 0.2] = 0
    toks[-1] = 0
    return toks.astype(np.int32)


def _pack(model, tokens, **kw):
    kw.setdefault("docs", 8)
    kw.setdefault("sentences", 8)
    kw.setdefault("width", 8)
    return pack_sentences(tokens, PackConfig(gap=packing_gap(model.cfg), **kw))


def _loss(logits, batch):
    return jnp.sum(jnp.sin(3.0 * logits[:batch]))  # every logit matters, with varied signs


def _logits_and_grads(model, fn, tokens, batch):
    """(logits, gradient leaves of a loss on the first `batch` logits), one jitted call."""

    @nnx.jit
    def run(model, tokens):
        def loss(m):
            logits = fn(m, tokens)
            return _loss(logits, batch), logits

        return nnx.value_and_grad(loss, has_aux=True)(model)

    (_, logits), grads = run(model, tokens)
    return np.asarray(logits), [np.asarray(g) for g in jax.tree.leaves(grads)]


def _call(model, tokens):
    return model(tokens)


def _tol(x64):
    return dict(rtol=1e-10, atol=1e-12) if x64 else dict(rtol=2e-5, atol=2e-6)


# ------------------------------------------------------------ tests


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("arch", ["han_rnn", "han_conv", "han_noenc"])
def test_packed_han_equals_previous_padded_path(arch, x64):
    rng = np.random.default_rng(7)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        model = _model(arch, dtype)
        tokens = _han_tokens(rng, interior_zeros=True)
        packed = _pack(model, tokens)
        want, g_want = _logits_and_grads(model, _reference_logits, tokens, len(tokens))
        got, g_got = _logits_and_grads(model, _call, packed, len(tokens))
        padded, g_padded = _logits_and_grads(model, _call, tokens, len(tokens))
    assert got.dtype == want.dtype == (np.float64 if x64 else np.float32)
    np.testing.assert_allclose(got[: len(tokens)], want, **_tol(x64))
    np.testing.assert_allclose(padded, want, **_tol(x64))
    for a, b in zip(g_padded, g_want, strict=True):
        np.testing.assert_allclose(a, b, **_tol(x64))
    assert len(g_got) == len(g_want)
    for a, b in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(a, b, **_tol(x64))
    # filler documents added by packing hold no sentence: their logits are the bias alone
    np.testing.assert_allclose(got[len(tokens) :], np.broadcast_to(model.output.bias[...], got[len(tokens) :].shape), **_tol(x64))  # fmt: skip


@pytest.mark.parametrize("x64", [False, True])
def test_flan_rnn_equals_previous_path(x64):
    rng = np.random.default_rng(3)
    toks = rng.integers(1, VOCAB, size=(5, 11))
    lengths = np.array([11, 1, 4, 7, 0])
    toks[np.arange(11)[None] >= lengths[:, None]] = 0
    toks[2, 1] = 0  # a masked step inside a document
    with jax.enable_x64(x64):
        model = _model("flan_rnn", jnp.float64 if x64 else jnp.float32)
        want, g_want = _logits_and_grads(model, _reference_logits, toks, 5)
        got, g_got = _logits_and_grads(model, _call, toks, 5)
    np.testing.assert_allclose(got, want, **_tol(x64))
    for a, b in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(a, b, **_tol(x64))


@pytest.mark.parametrize("arch", ["han_rnn", "han_conv"])
def test_packed_outputs_do_not_depend_on_padding_or_layout(arch):
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        model = _model(arch, jnp.float64)
        tokens = _han_tokens(rng)
        base = np.asarray(model(_pack(model, tokens)))[: len(tokens)]
        bigger = np.zeros((8, 9, 13), np.int32)  # more documents, sentence slots and words
        bigger[: len(tokens), :6, :9] = tokens
        layouts = [
            _pack(model, bigger),
            _pack(model, tokens, docs=16, sentences=16, width=32),  # other minimums
            _pack(model, tokens, width=9, ratio=1.5),  # tight rows: other neighbours per row
        ]
        if arch == "han_conv":  # wider gaps than needed change nothing either
            cfg = PackConfig(docs=8, sentences=8, width=8, gap=packing_gap(model.cfg) + 3)
            layouts.append(pack_sentences(tokens, cfg))
        outs = [np.asarray(model(p))[: len(tokens)] for p in layouts]
    for out in outs:
        np.testing.assert_allclose(out, base, rtol=1e-12, atol=1e-13)


def test_packed_training_mode_uses_dropout_only_on_real_tokens():
    model = _model("han_rnn", jnp.float32)
    tokens = _han_tokens(np.random.default_rng(2))
    packed = _pack(model, tokens)
    model.train()
    a = np.asarray(model(packed))
    b = np.asarray(model(packed))
    model.eval()
    assert np.all(np.isfinite(a)) and not np.allclose(a[:4], b[:4])


@pytest.mark.parametrize("x64", [False, True])
def test_segment_softmax_matches_masked_softmax_on_hard_cases(x64):
    rng = np.random.default_rng(5)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        # rows of 6 items: extreme margins, exact ties, one item, peaked, all masked
        scores = np.array(
            [
                [80.0, -80.0, 0.0, 1.0, 2.0, 3.0],
                [2.0, 2.0, 2.0, 2.0, 0.0, 0.0],
                [5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                [30.0, 9.3, 9.2, -1e3, 0.0, 0.0],
                [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ]
        )
        mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 1], [0] * 6], bool)  # fmt: skip
        want = np.asarray(masked_softmax(jnp.asarray(scores, dtype), mask))
        segment = np.where(mask, np.arange(5)[:, None], 5)
        perm = rng.permutation(scores.size)  # segments need not be contiguous
        flat = segment_softmax(
            jnp.asarray(scores.reshape(-1)[perm], dtype), jnp.asarray(segment.reshape(-1)[perm]), 5
        )
        got = np.empty(scores.size)
        got[perm] = np.asarray(flat)
    np.testing.assert_allclose(got.reshape(scores.shape), want, **_tol(x64))


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize(
    "case", ["trailing_padding", "all_masked", "one_step", "no_mask", "few_used_steps"]
)
def test_bigru_loop_and_its_gradient_equal_the_previous_scans(case, x64):
    """The loop runs only to the last unmasked position, projects inside, and has a hand-written
    gradient: outputs and gradients (inputs, both projections, both directions) must equal two
    autodiffed masked scans, also where whole trailing columns or every position are masked.
    "few_used_steps" (5 of 12) takes the weight gradients over chunks of 4 steps up to the last
    used one, the last chunk partly past it; the others over all steps (or no chunk at all).
    (Packed rows with segments: `test_packed_han_equals_previous_padded_path`.)"""
    rng = np.random.default_rng(13)
    time = {"one_step": 1, "few_used_steps": 12}.get(case, 9)
    rows, hidden, d_in = 5, 3, 4
    mask = rng.random((rows, time)) < 0.8
    mask[:, 0] = True
    if case == "trailing_padding":
        mask[:, 5:] = False  # the loop stops at 5 of 9
        mask[1, 2] = False
    elif case == "all_masked":
        mask[:] = False
    elif case == "few_used_steps":
        mask[:, 5:] = False
        mask[2, 3:] = False
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32

        def arr(*shape):
            return jnp.asarray(rng.normal(size=shape), dtype)

        x, weights = arr(rows, time, d_in), arr(rows, time, 2 * hidden)
        k_ih, b_ih = arr(d_in, 6 * hidden), arr(6 * hidden)
        params = (
            arr(hidden, 3 * hidden),
            arr(3 * hidden),
            arr(hidden, 3 * hidden),
            arr(3 * hidden),
        )
        m = None if case == "no_mask" else jnp.asarray(mask)

        def reference(x, k_ih, b_ih, kf, bf, kb, bb):
            xp = x @ k_ih + b_ih
            full = jnp.ones((rows, time), bool) if m is None else m
            outs = [
                _reference_gru_scan(xp[..., : 3 * hidden], full, kf, bf, reverse=False),
                _reference_gru_scan(xp[..., 3 * hidden :], full, kb, bb, reverse=True),
            ]
            return jnp.concatenate(outs, axis=-1)

        def fast(x, k_ih, b_ih, kf, bf, kb, bb):
            return bigru_scan(x, (kf, bf), (kb, bb), mask=m, proj=(k_ih, b_ih))

        def projected_first(x, k_ih, b_ih, kf, bf, kb, bb):
            return bigru_scan(x @ k_ih + b_ih, (kf, bf), (kb, bb), mask=m)

        args = (x, k_ih, b_ih, *params)
        results = []
        for fn in (reference, fast, projected_first):

            def loss(*a, fn=fn):
                out = fn(*a)
                return jnp.sum(jnp.sin(3.0 * out * weights)), out

            run = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True))
            (_, out), grads = run(*args)
            results.append((np.asarray(out), [np.asarray(g) for g in grads]))
    (want, g_want), *others = results
    if case == "all_masked":
        assert not want.any()
    for got, g_got in others:
        np.testing.assert_allclose(got, want, **_tol(x64))
        for a, b in zip(g_got, g_want, strict=True):
            np.testing.assert_allclose(a, b, **_tol(x64))
