"""Hard numerical cases of the affine fast paths: the exact minimum flip set against brute force
under peaked, extreme, tied and near-one-hot attention; gradients of confident predictions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import affine_head, assert_minimum_bounds_every_ranking

from attn_interp.erasure import ErasureConfig, minimum_flip_set, run_suite, to_flat
from attn_interp.erasure.reference import brute_force_min_flip
from attn_interp.models.attention import masked_softmax


def _check_against_brute_force(values, weights, mask, kernel, bias, dtype, min_robust=0.8):
    with jax.enable_x64(dtype == jnp.float64):
        cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        weights = cast(weights)
        logits = jnp.einsum("bn,bnd->bd", weights, cast(values)) @ cast(kernel) + cast(bias)
        y = np.asarray(jnp.argmax(logits, -1))
        k_min, members = minimum_flip_set(
            cast(values), weights, mask, (cast(kernel), cast(bias)), y
        )
        a = np.asarray(weights)
    want, robust = brute_force_min_flip(values, a, mask, kernel, bias, y)
    assert robust.mean() >= min_robust, robust.mean()
    bad = np.flatnonzero(robust & (k_min != want))
    assert bad.size == 0, [(i, k_min[i], want[i]) for i in bad[:5]]
    # The returned members are a flip set of that size.
    for i in np.flatnonzero(robust & (want > 0)):
        assert members[i].sum() == want[i] and (members[i] <= mask[i]).all()
    return want


def _affine_docs(rng, b, n, d=4, c=3, integer=False):
    values = rng.normal(size=(b, n, d))
    kernel = rng.normal(size=(d, c))
    bias = 0.3 * rng.normal(size=c)
    if integer:
        # No bias: survivors' logits are then ratios of equal sums, ties stay exact in floats.
        values, kernel, bias = np.round(2 * values), np.round(kernel), np.zeros(c)
    lengths = rng.integers(1, n + 1, size=b)
    mask = np.arange(n)[None] < lengths[:, None]
    return values * mask[..., None], mask, kernel, bias


def test_minimal_peaked_case_from_the_issue():
    """d = 1, C = 2, kernel [[1, -1]], values [[1], [-1]], scores [20, 0]: removing item 0 flips."""
    values = np.array([[[1.0], [-1.0]]], np.float32)
    mask = np.ones((1, 2), bool)
    weights = masked_softmax(jnp.asarray([[20.0, 0.0]], jnp.float32), jnp.asarray(mask))
    k_min, members = minimum_flip_set(
        values, weights, mask, (np.array([[1.0, -1.0]]), np.zeros(2)), [0]
    )
    assert k_min.tolist() == [1] and members.tolist() == [[True, False]]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_minimum_flip_set_brute_force_on_peaked_attention(dtype):
    rng = np.random.default_rng(0)
    b, n = 96, 12  # lengths 1 ... 12
    values, mask, kernel, bias = _affine_docs(rng, b, n)
    spread = rng.choice([5.0, 15.0, 30.0, 45.0], size=(b, 1))
    scores = spread * rng.normal(size=(b, n))
    with jax.enable_x64(dtype == jnp.float64):
        weights = np.asarray(masked_softmax(jnp.asarray(scores, dtype), jnp.asarray(mask)))
    want = _check_against_brute_force(values, weights, mask, kernel, bias, dtype)
    assert (want > 0).mean() > 0.5


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_minimum_flip_set_brute_force_on_extreme_scores(dtype):
    """Top score +60 ... +110 above the rest: survivors hold e^-60 ... e^-110 of the mass (below
    float32's range at the top end, where only the bias is left after removing the top item)."""
    rng = np.random.default_rng(1)
    b, n = 60, 8
    values, mask, kernel, bias = _affine_docs(rng, b, n)
    scores = rng.normal(size=(b, n))
    top = rng.integers(0, n, size=b) % mask.sum(-1)
    scores[np.arange(b), top] += rng.uniform(60.0, 110.0, size=b)
    with jax.enable_x64(dtype == jnp.float64):
        weights = np.asarray(masked_softmax(jnp.asarray(scores, dtype), jnp.asarray(mask)))
    want = _check_against_brute_force(values, weights, mask, kernel, bias, dtype)
    assert (want == 1).mean() > 0.3


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_minimum_flip_set_brute_force_on_near_one_hot_weights(dtype):
    rng = np.random.default_rng(2)
    b, n = 60, 9
    values, mask, kernel, bias = _affine_docs(rng, b, n)
    eps = 10.0 ** rng.uniform(-30, -3, size=(b, 1))
    if dtype == jnp.float32:
        eps = np.maximum(eps, 1e-30)
    weights = np.where(mask, eps * rng.random((b, n)), 0.0)
    top = rng.integers(0, n, size=b) % mask.sum(-1)
    weights[np.arange(b), top] = 1.0
    weights = (weights / weights.sum(-1, keepdims=True)).astype(np.dtype(dtype))
    _check_against_brute_force(values, weights, mask, kernel, bias, dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_minimum_flip_set_brute_force_on_exact_ties(dtype):
    """Integer values and equal power-of-two weights: exact ties of survivors' logits, decided by
    argmax's first index as in the engine's curves."""
    rng = np.random.default_rng(3)
    b, n = 80, 8
    values, _, kernel, bias = _affine_docs(rng, b, n, c=3, integer=True)
    lengths = rng.choice([1, 2, 4, 8], size=b)
    mask = np.arange(n)[None] < lengths[:, None]
    values *= mask[..., None]
    weights = np.where(mask, 1.0 / lengths[:, None], 0.0)
    want = _check_against_brute_force(values, weights, mask, kernel, bias, dtype, min_robust=1.0)
    assert (want > 0).any()


def test_minimum_flip_set_tie_toward_a_lower_class():
    """Removing item 0 leaves logits [1, 1]: class 0 wins the tie, so y = 1 flips at k = 1."""
    values = np.array([[[0.0, 2.0], [1.0, 1.0]]])
    k_min, members = minimum_flip_set(
        values, np.full((1, 2), 0.5), np.ones((1, 2), bool), (np.eye(2), np.zeros(2)), [1]
    )
    assert k_min.tolist() == [1] and members.tolist() == [[True, False]]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_minimum_below_every_ranking_on_peaked_documents(dtype):
    """run_suite on peaked documents (closed form and mask path): k_min <= k of every ranking."""
    rng = np.random.default_rng(4)
    b, n, d, c = 64, 24, 6, 3
    values, mask, kernel, bias = _affine_docs(rng, b, n, d=d, c=c)
    scores = rng.choice([10.0, 25.0, 40.0], size=(b, 1)) * rng.normal(size=(b, n))
    with jax.enable_x64(dtype == jnp.float64):
        cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        args = (cast(values), cast(scores), mask)
        kw = dict(head=affine_head(cast(kernel), cast(bias)), affine=(cast(kernel), cast(bias)))
        for method in ("closed_form", "mask"):
            cfg = ErasureConfig(num_random=3, method=method, aopc=False, sufficiency=False)
            res = to_flat(run_suite(*args, config=cfg, **kw))
            assert_minimum_bounds_every_ranking(res)
            assert (res["k_min"] > 0).mean() > 0.5
