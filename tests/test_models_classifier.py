"""HAN / FLAN classifiers: shapes, padding invariance, head contract, gradients, dropout, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.models import ARCHITECTURES, AttentionClassifier, ModelConfig, make_model
from attn_interp.models.attention import masked_softmax

VOCAB, CLASSES = 40, 3


def _config(arch, **kwargs):
    return ModelConfig(arch, VOCAB, CLASSES, embed_dim=8, hidden=4, **kwargs)


def _random_batch(rng, hierarchical, batch=4, sentences=3, words=5, tokens=9):
    """Random prefix-padded tokens with one all-padding filler row at the end."""
    if hierarchical:
        toks = rng.integers(1, VOCAB, size=(batch, sentences, words))
        n_sent = rng.integers(1, sentences + 1, size=batch)
        n_words = rng.integers(1, words + 1, size=(batch, sentences))
        toks[np.arange(words)[None, None, :] >= n_words[..., None]] = 0
        toks[np.arange(sentences)[None, :] >= n_sent[:, None]] = 0
        toks[-1] = 0
    else:
        toks = rng.integers(1, VOCAB, size=(batch, tokens))
        lengths = rng.integers(1, tokens + 1, size=batch)
        toks[np.arange(tokens)[None, :] >= lengths[:, None]] = 0
        toks[-1] = 0
    return toks.astype(np.int32)


@nnx.jit
def _forward(model, tokens):
    inputs = model.encode(tokens)
    return model(tokens), model.attention(tokens), inputs


@jax.jit
def _perturb(params):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    noisy = [
        x + 0.3 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def arch_model(request):
    model = make_model(_config(request.param), rngs=nnx.Rngs(0))
    # Perturb every parameter so that zero-initialised biases and the zero padding embedding row
    # cannot hide leaks from padding, and "filler rows give the output bias" is a real check.
    nnx.update(model, _perturb(nnx.state(model, nnx.Param)))
    model.eval()
    return model


def test_shapes_masks_and_filler_rows(arch_model):
    rng = np.random.default_rng(0)
    toks = _random_batch(rng, arch_model.hierarchical)
    logits, weights, inputs = _forward(arch_model, toks)
    cfg = arch_model.cfg
    n = toks.shape[1]
    assert logits.shape == (toks.shape[0], CLASSES)
    assert weights.shape == inputs.scores.shape == inputs.mask.shape == (toks.shape[0], n)
    assert inputs.values.shape == (toks.shape[0], n, cfg.attention_dim)
    want_mask = toks[:, :, 0] != 0 if arch_model.hierarchical else toks != 0
    np.testing.assert_array_equal(np.asarray(inputs.mask), want_mask)
    assert np.all(np.asarray(inputs.values)[~want_mask] == 0.0)
    assert np.all(np.asarray(weights)[~want_mask] == 0.0)
    np.testing.assert_allclose(np.asarray(weights)[:-1].sum(1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(logits)))
    # filler row: zero weights, logits == bias
    assert np.all(np.asarray(weights)[-1] == 0.0)
    np.testing.assert_array_equal(np.asarray(logits)[-1], np.asarray(arch_model.output.bias[...]))


def test_padding_invariance(arch_model):
    rng = np.random.default_rng(1)
    toks = _random_batch(rng, arch_model.hierarchical)
    if arch_model.hierarchical:
        padded = np.zeros((toks.shape[0], toks.shape[1] + 2, toks.shape[2] + 3), np.int32)
        padded[:, : toks.shape[1], : toks.shape[2]] = toks
    else:
        padded = np.zeros((toks.shape[0], toks.shape[1] + 4), np.int32)
        padded[:, : toks.shape[1]] = toks
    logits, weights, _ = _forward(arch_model, toks)
    logits_p, weights_p, _ = _forward(arch_model, padded)
    n = toks.shape[1]
    np.testing.assert_allclose(np.asarray(logits_p), np.asarray(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights_p)[:, :n], np.asarray(weights), atol=1e-6)
    assert np.all(np.asarray(weights_p)[:, n:] == 0.0)
    # Each document alone (no other rows in the batch, no extra padding) gives the same result.
    single_logits, single_weights, _ = _forward(arch_model, toks[:1])
    np.testing.assert_allclose(np.asarray(single_logits), np.asarray(logits)[:1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(single_weights), np.asarray(weights)[:1], atol=1e-6)


def test_head_matches_call_and_affine_formula(arch_model):
    rng = np.random.default_rng(2)
    toks = _random_batch(rng, arch_model.hierarchical)
    logits, _, inputs = _forward(arch_model, toks)
    head = nnx.jit(lambda m, v, w: m.head(v, w))
    via_head = head(arch_model, inputs.values, masked_softmax(inputs.scores, inputs.mask))
    np.testing.assert_allclose(np.asarray(via_head), np.asarray(logits), rtol=1e-6, atol=1e-6)
    # Arbitrary (unnormalised) weights: head is the plain affine map, no renormalisation inside.
    weights = rng.random(inputs.scores.shape).astype(np.float32) * np.asarray(inputs.mask)
    w_out, b_out = (np.asarray(a, np.float64) for a in arch_model.head_params())
    assert w_out.shape == (arch_model.cfg.attention_dim, CLASSES) and b_out.shape == (CLASSES,)
    values = np.asarray(inputs.values, np.float64)
    want = (weights[..., None] * values).sum(1) @ w_out + b_out
    got = np.asarray(head(arch_model, inputs.values, jnp.asarray(weights)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["han_rnn", "flan_conv"])
def test_grad_of_predicted_probability_wrt_weights_matches_finite_differences(arch):
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        model = make_model(_config(arch, param_dtype=jnp.float64), rngs=nnx.Rngs(1))
        model.output.kernel[...] = jnp.asarray(rng.normal(size=model.output.kernel[...].shape))
        model.eval()
        toks = _random_batch(rng, model.hierarchical)[:1]
        inputs = nnx.jit(lambda m, t: m.encode(t))(model, toks)
        weights = masked_softmax(inputs.scores, inputs.mask)
        assert weights.dtype == jnp.float64
        pred = int(jnp.argmax(model.head(inputs.values, weights)[0]))

        def prob(w):
            return jax.nn.softmax(model.head(inputs.values, w[None])[0])[pred]

        grad = np.asarray(jax.grad(prob)(weights[0]))
        eps = 1e-6
        fd = np.array(
            [
                (prob(weights[0].at[i].add(eps)) - prob(weights[0].at[i].add(-eps))) / (2 * eps)
                for i in range(weights.shape[1])
            ]
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
        # Closed form of paper_notes.md §6.3: g_i = p_y (z_iy - sum_c p_c z_ic), zero at padding.
        w_out, b_out = model.head_params()
        z = np.asarray(inputs.values[0] @ w_out)
        p = np.asarray(jax.nn.softmax(np.asarray(weights[0]) @ z + np.asarray(b_out)))
        np.testing.assert_allclose(grad, p[pred] * (z[:, pred] - z @ p), rtol=1e-10, atol=1e-12)
        assert np.all(grad[~np.asarray(inputs.mask[0])] == 0.0)
        assert np.any(np.abs(grad) > 1e-6)


def test_dropout_active_only_in_train_mode():
    model = make_model(_config("han_conv"), rngs=nnx.Rngs(0))
    toks = _random_batch(np.random.default_rng(4), True)[:-1]
    forward = nnx.jit(lambda m, t: m(t))
    model.eval()
    eval_a, eval_b = np.asarray(forward(model, toks)), np.asarray(forward(model, toks))
    np.testing.assert_array_equal(eval_a, eval_b)
    model.train()
    train_a, train_b = np.asarray(forward(model, toks)), np.asarray(forward(model, toks))
    assert not np.allclose(train_a, eval_a)
    assert not np.allclose(train_a, train_b)  # the dropout rng advances between calls
    # Logit dropout acts in head(): train-mode head differs, eval-mode head is the affine map.
    model.eval()
    _, weights, inputs = _forward(model, toks)
    model.train()
    train_head = np.asarray(nnx.jit(lambda m, v, w: m.head(v, w))(model, inputs.values, weights))
    w_out, b_out = model.head_params()
    eval_head = np.asarray(jnp.einsum("bn,bnd->bd", weights, inputs.values) @ w_out + b_out)
    scaled = eval_head / (1.0 - model.cfg.logit_dropout)
    kept = np.isclose(train_head, scaled, rtol=1e-5, atol=1e-6)
    assert np.all(kept | (train_head == 0.0))  # inverted dropout: kept entries are rescaled
    assert not np.all(kept)
    model.eval()
    np.testing.assert_allclose(np.asarray(forward(model, toks)), eval_a, rtol=1e-6)


def test_split_merge_under_jax_jit_matches_nnx_jit():
    model = make_model(_config("flan_rnn"), rngs=nnx.Rngs(0))
    model.eval()
    toks = _random_batch(np.random.default_rng(6), False)
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, tokens):
        return nnx.merge(graphdef, state)(tokens)

    want = np.asarray(nnx.jit(lambda m, t: m(t))(model, toks))
    np.testing.assert_allclose(np.asarray(forward(state, toks)), want, rtol=1e-6, atol=1e-7)


def test_initial_embeddings_and_input_errors():
    cfg = _config("flan_noenc")
    table = np.random.default_rng(7).normal(size=(VOCAB, 8)).astype(np.float32)
    model = make_model(cfg, rngs=nnx.Rngs(0), embeddings=table)
    assert isinstance(model, AttentionClassifier) and not model.hierarchical
    np.testing.assert_array_equal(np.asarray(model.embed.embedding[...]), table)
    default = make_model(cfg, rngs=nnx.Rngs(0))
    assert np.all(np.asarray(default.embed.embedding[...])[0] == 0.0)
    with pytest.raises(ValueError, match="vocab_size, embed_dim"):
        make_model(cfg, rngs=nnx.Rngs(0), embeddings=table[:, :4])
    with pytest.raises(ValueError, match="rank 2"):
        model(np.ones((2, 3, 4), np.int32))
    with pytest.raises(TypeError, match="ModelConfig"):
        make_model({"arch": "han_rnn"}, rngs=nnx.Rngs(0))
