"""Masked softmax, additive attention scorer and ModelConfig validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.models import AdditiveAttention, ModelConfig, masked_softmax


def _random_mask(rng, shape):
    mask = rng.random(shape) < 0.6
    mask[0] = False  # one row with no valid item
    mask[1] = True  # one full row
    return mask


def _reference_masked_softmax(scores, mask):
    out = np.zeros_like(scores)
    for row in range(scores.shape[0]):
        valid = mask[row]
        if valid.any():
            s = scores[row, valid]
            e = np.exp(s - s.max())
            out[row, valid] = e / e.sum()
    return out


@pytest.mark.parametrize("x64", [False, True])
def test_masked_softmax_matches_softmax_over_valid_subset(x64):
    rng = np.random.default_rng(0)
    dtype = np.float64 if x64 else np.float32
    scores = (rng.normal(size=(9, 7)) * 5).astype(dtype)
    mask = _random_mask(rng, scores.shape)
    # Garbage at padded positions must not matter.
    scores_with_junk = np.where(
        mask, scores, np.array([np.inf, -np.inf, np.nan, 1e30])[rng.integers(0, 4, scores.shape)]
    ).astype(dtype)
    with jax.enable_x64(x64):
        got = np.asarray(masked_softmax(jnp.asarray(scores_with_junk), jnp.asarray(mask)))
    assert got.dtype == dtype
    want = _reference_masked_softmax(scores.astype(np.float64), mask)
    np.testing.assert_allclose(got, want, rtol=1e-12 if x64 else 1e-5, atol=1e-15 if x64 else 1e-7)
    assert np.all(got[~mask] == 0.0)  # exact zeros at padding
    assert np.all(got[0] == 0.0)  # empty row: zeros, never NaN
    np.testing.assert_allclose(got[mask.any(1)].sum(1), 1.0, rtol=1e-6)


def test_masked_softmax_gradients_are_finite_and_zero_at_padding():
    rng = np.random.default_rng(1)
    scores = jnp.asarray(rng.normal(size=(5, 6)).astype(np.float32))
    mask = jnp.asarray(_random_mask(rng, scores.shape))
    coeff = jnp.asarray(rng.normal(size=(5, 6)).astype(np.float32))
    grad = jax.grad(lambda s: jnp.sum(masked_softmax(s, mask) * coeff))(scores)
    assert np.all(np.isfinite(grad))
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0.0)


@pytest.mark.parametrize("x64", [False, True])
def test_masked_softmax_hard_cases_without_any_nan(x64):
    """Extreme spreads and magnitudes, exact ties, a one-item row (n = 1), one valid item among
    junk and a row without valid items, jitted under `jax.debug_nans` (no NaN even inside, also
    in the gradient): against extended precision, exact zeros at masked items and empty rows."""
    dtype = np.float64 if x64 else np.float32
    big = np.finfo(dtype).max / 4
    rows = [
        ([1e4, 0.0, -1e4, 3.0], [1, 1, 1, 0]),
        ([88.0, -88.0, 87.5, 0.0], [1, 1, 1, 1]),
        ([big, big, -big, big], [1, 1, 1, 0]),  # a tie of huge scores
        ([-big, -big, -big, 0.0], [1, 1, 0, 0]),
        ([20.0, 0.0, 0.0, 0.0], [1, 1, 0, 1]),  # near one-hot (1 - p ~ 4e-9)
        ([5.0, np.nan, np.inf, -np.inf], [1, 0, 0, 0]),  # one valid item among junk
        ([np.nan, np.inf, 1.0, 2.0], [0, 0, 0, 0]),  # no valid item
    ]
    scores = np.array([r[0] for r in rows], dtype)
    mask = np.array([r[1] for r in rows], bool)
    with jax.enable_x64(x64):
        junk = jnp.asarray(scores)  # NaN at masked items: put on the device before debug_nans
        coeff = jnp.arange(4, dtype=dtype)
        with jax.debug_nans(True):
            got = np.asarray(jax.jit(masked_softmax)(junk, jnp.asarray(mask)))
            first = jnp.asarray(np.where(mask, scores, 0.0)[:, :1])
            one = np.asarray(masked_softmax(first, jnp.ones((7, 1), bool)))
            grad = jax.grad(lambda s: jnp.sum(masked_softmax(s, jnp.asarray(mask)) @ coeff))(
                jnp.asarray(np.where(mask, scores, 0.0))
            )
    assert got.dtype == dtype and not np.isnan(got).any()
    want = np.zeros(scores.shape, np.longdouble)
    for i in range(len(rows)):
        s = scores[i, mask[i]].astype(np.longdouble)
        if s.size:
            e = np.exp(s - s.max())
            want[i, mask[i]] = e / e.sum()
    eps = np.finfo(dtype).eps
    # Subnormal weights may flush to 0: absolute tolerance of the smallest normal number.
    tiny = np.finfo(dtype).tiny
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=8 * eps, atol=tiny)
    assert np.all(got[~mask] == 0.0) and np.all(got[-1] == 0.0)
    np.testing.assert_array_equal(got[2, :3], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(one, 1.0)  # n = 1: the item takes all the weight
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[~mask] == 0.0)


def test_masked_softmax_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="mask shape"):
        masked_softmax(jnp.zeros((2, 3)), jnp.ones((2, 4), bool))


def test_additive_attention_matches_formula():
    rng = np.random.default_rng(2)
    layer = AdditiveAttention(6, rngs=nnx.Rngs(3))
    values = rng.normal(size=(2, 5, 6)).astype(np.float32)
    w = np.asarray(layer.projection.kernel[...])
    b = np.asarray(layer.projection.bias[...])
    c = np.asarray(layer.context.kernel[...])[:, 0]
    want = np.tanh(values @ w + b) @ c
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(values))), want, rtol=1e-5, atol=1e-6)
    # PyTorch default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias included.
    bound = 1 / np.sqrt(6)
    for p in (w, b, c):
        assert np.all(np.abs(p) <= bound) and np.any(np.abs(p) > bound / 4)


@pytest.mark.parametrize("x64", [False, True])
def test_additive_attention_and_its_gradients_equal_the_unflattened_layers(x64):
    """Scores are computed on `[cells, dim]`: scores and kernel/bias/input gradients must equal
    the layers applied to the `[rows, items, dim]` array, also for a 4-d input and one item."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        layer = AdditiveAttention(6, rngs=nnx.Rngs(3), param_dtype=dtype)
        rng = np.random.default_rng(4)
        tol = dict(rtol=1e-12, atol=1e-13) if x64 else dict(rtol=1e-5, atol=1e-6)
        for shape in [(3, 7, 6), (2, 3, 4, 6), (1, 1, 6)]:
            values = jnp.asarray(rng.normal(size=shape), dtype)
            weights = jnp.asarray(rng.normal(size=shape[:-1]), dtype)

            def loss(layer, values, unflattened, weights=weights):
                if unflattened:
                    proj = layer.projection(values)
                    scores = layer.context(jnp.tanh(proj))[..., 0]
                else:
                    scores = layer(values)
                return jnp.sum(jnp.sin(scores) * weights), scores

            grad = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)
            (_, got), g_got = grad(layer, values, False)
            (_, want), g_want = grad(layer, values, True)
            assert got.shape == shape[:-1] and got.dtype == dtype
            np.testing.assert_allclose(got, want, **tol)
            for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want), strict=True):
                np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(arch="han_lstm"), "not a known architecture"),
        (dict(arch="han_rnn", vocab_size=1), "at least 2"),
        (dict(arch="han_rnn", num_classes=0), "positive int"),
        (dict(arch="flan_conv", conv_widths=(3, 4)), "odd"),
        (dict(arch="flan_conv", logit_dropout=1.0), r"\[0, 1\)"),
        (dict(arch="flan_rnn", gru_hidden_bias="ones"), "gru_hidden_bias"),
    ],
)
def test_model_config_rejects_bad_values(kwargs, match):
    base = dict(vocab_size=10, num_classes=3)
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{**base, **kwargs})


def test_model_config_dimensions():
    assert ModelConfig("han_rnn", 10, 2).attention_dim == 100
    assert ModelConfig("flan_conv", 10, 2).attention_dim == 100
    assert ModelConfig("han_noenc", 10, 2).attention_dim == 200
    assert ModelConfig("flan_noenc", 10, 2, embed_dim=8).attention_dim == 8
    assert ModelConfig("han_conv", 10, 2, conv_widths=[3, 5, 7], hidden=4).attention_dim == 12
