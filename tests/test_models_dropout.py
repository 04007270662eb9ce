"""Dropout with 16 random bits per decision: rate, independence, scaling, train/eval switch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.models.dropout import Dropout, keep_mask, threefry_bits


@pytest.mark.parametrize("keep", [0.556, 0.78, 0.5, 1e-3])
def test_keep_mask_rate_and_independence(keep):
    n = 1 << 22
    mask = np.asarray(keep_mask(jax.random.key(0), keep, (n // 4, 4)))
    want = round(keep * 65536) / 65536
    sigma = np.sqrt(want * (1 - want) / n)
    assert abs(mask.mean() - want) < 5 * sigma
    flat = mask.reshape(-1).astype(np.float64)
    # neighbours share a random word: they must still be uncorrelated
    for lag in (1, 2, 3):
        corr = np.corrcoef(flat[:-lag], flat[lag:])[0, 1]
        assert abs(corr) < 5 / np.sqrt(n)
    other = np.asarray(keep_mask(jax.random.key(1), keep, (n // 4, 4)))
    assert (mask != other).any()


def test_dropout_scales_kept_values_and_switches_with_train_eval():
    layer = Dropout(0.444, rngs=nnx.Rngs(0))
    x = jnp.arange(1.0, 1.0 + 4000.0).reshape(40, 100)
    y = np.asarray(layer(x))
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.556, rtol=1e-6)
    assert 0.5 < kept.mean() < 0.61
    assert not np.array_equal(np.asarray(layer(x)) != 0, kept)  # a fresh mask per call
    layer.eval()
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(x))
    assert np.all(np.asarray(Dropout(0.0, rngs=nnx.Rngs(0))(x)) == np.asarray(x))


@pytest.mark.parametrize("n", [1, 2, 7, 4097])
def test_threefry_bits_equal_jax_random_bits(n):
    """The written-out hash gives JAX's own words (so dropout masks are unchanged), for fresh,
    split and folded keys, eagerly and under jit; other key kinds fall back to JAX."""
    base = jax.random.key(2**31 + 5)
    keys = [jax.random.key(0), *jax.random.split(base, 3), jax.random.fold_in(base, 7)]
    jitted = jax.jit(threefry_bits, static_argnums=1)
    for key in keys:
        want = np.asarray(jax.random.bits(key, (n,), jnp.uint32))
        np.testing.assert_array_equal(np.asarray(threefry_bits(key, n)), want)
        np.testing.assert_array_equal(np.asarray(jitted(key, n)), want)
    rbg = jax.random.key(3, impl="rbg")
    np.testing.assert_array_equal(
        np.asarray(threefry_bits(rbg, n)), np.asarray(jax.random.bits(rbg, (n,), jnp.uint32))
    )


def test_keep_mask_is_sixteen_bit_halves_of_jax_words():
    """Reference: each element compares its 16-bit half of `jax.random.bits` with keep * 2^16."""
    key, keep, shape = jax.random.key(11), 0.556, (3, 5, 7)
    n = 3 * 5 * 7
    words = np.asarray(jax.random.bits(key, ((n + 1) // 2,), jnp.uint32))
    halves = words.view(np.uint16)[:n]  # little-endian: low half first, as bitcast_convert_type
    want = (halves < round(keep * 65536)).reshape(shape)
    np.testing.assert_array_equal(np.asarray(keep_mask(key, keep, shape)), want)
