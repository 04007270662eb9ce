"""Rank agreement: Kendall tau-b and its p-value against scipy, top-k overlap against a slow
reference, the engine's scores reused exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from attn_interp.erasure import ErasureConfig, run_suite, to_flat
from attn_interp.erasure.config import AffineParams
from attn_interp.followups import FollowupConfig, kendall_tau_b, run_followups, top_k_overlap
from attn_interp.followups.agreement import overlap_ks
from attn_interp.models.attention import masked_softmax


def _tied(rng, shape, levels):
    return rng.integers(0, levels, shape).astype(np.float64) / levels


def _masks(rng, b, n):
    mask = rng.random((b, n)) < 0.75  # non-prefix masks
    mask[0] = True
    mask[1] = False
    mask[1, 3] = True  # n = 1
    mask[2] = False
    mask[2, [1, 5]] = True  # n = 2
    return mask


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_tau_b_and_p_value_match_scipy(dtype):
    rng = np.random.default_rng(0)
    b, n, r = 9, 14, 3
    mask = _masks(rng, b, n)
    x = _tied(rng, (b, n), 4)
    ys = np.concatenate(
        [
            _tied(rng, (b, 1, n), 3),
            rng.normal(size=(b, 1, n)),
            np.broadcast_to(x[:, None], (b, 1, n)),
        ],
        axis=1,
    )
    x[3, mask[3]] = 0.5  # all tied in x: undefined
    with jax.enable_x64(dtype == jnp.float64):
        res = kendall_tau_b(jnp.asarray(x, dtype), jnp.asarray(ys, dtype), mask, block_docs=4)
        tau, p = np.asarray(res.tau, np.float64), np.asarray(res.p_value, np.float64)
    assert tau.shape == p.shape == (b, r)
    for i in range(b):
        for j in range(r):
            m = mask[i]
            if m.sum() < 2 or np.unique(x[i, m]).size < 2:
                assert np.isnan(tau[i, j]) and np.isnan(p[i, j])
                continue
            if m.sum() == 2:  # scipy's variance divides by n - 2
                a, c = x[i, m], ys[i, j, m]
                ref_tau = np.sign(a[1] - a[0]) * np.sign(c[1] - c[0]) if c[0] != c[1] else np.nan
                np.testing.assert_allclose(tau[i, j], ref_tau, atol=1e-6)
                continue
            ref = stats.kendalltau(x[i, m], ys[i, j, m], variant="b", method="asymptotic")
            np.testing.assert_allclose(tau[i, j], ref.statistic, atol=1e-6)
            np.testing.assert_allclose(p[i, j], ref.pvalue, atol=1e-5)
    np.testing.assert_allclose(tau[np.isfinite(tau[:, 2]), 2], 1.0, atol=1e-6)


def _overlap_reference(x, y, mask, k):
    idx = np.flatnonzero(mask)
    if idx.size <= k:
        return np.nan
    top_x = idx[np.argsort(-x[idx], kind="stable")[:k]]
    top_y = idx[np.argsort(-y[idx], kind="stable")[:k]]
    return len(set(top_x) & set(top_y)) / k


def test_top_k_overlap_matches_a_slow_reference():
    rng = np.random.default_rng(1)
    b, n = 8, 13
    mask = _masks(rng, b, n)
    x = _tied(rng, (b, n), 3).astype(np.float32)
    ys = np.stack([_tied(rng, (b, n), 2), rng.normal(size=(b, n))], 1).astype(np.float32)
    ks = np.asarray(overlap_ks(jnp.asarray(mask), (1, 3), (0.1, 0.5)))
    for col in range(ks.shape[1]):
        got = np.asarray(top_k_overlap(x, ys, mask, jnp.asarray(ks[:, col])))
        for i in range(b):
            for j in range(2):
                ref = _overlap_reference(x[i], ys[i, j], mask[i], ks[i, col])
                np.testing.assert_equal(got[i, j], np.float32(ref))
    assert ks[0, 2] == int(np.ceil(0.1 * n))


def _suite_problem(seed=2, b=6, n=10, d=5, c=4):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(b, n, d)).astype(np.float32)
    scores = rng.normal(size=(b, n)).astype(np.float32) * 2
    mask = _masks(rng, b, n)
    kernel = rng.normal(size=(d, c)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32)
    return values, scores, mask, AffineParams(jnp.asarray(kernel), jnp.asarray(bias))


def _affine_head(values, weights, kernel, bias):
    return jnp.einsum("bn,bnd->bd", weights, values) @ kernel + bias


@pytest.mark.parametrize("closed", [True, False])
def test_scores_are_the_engines_and_tau_follows_them(closed):
    values, scores, mask, affine = _suite_problem()

    def head(v, w):
        return _affine_head(v, w, affine.kernel, affine.bias)

    kw = {"affine": affine} if closed else {"head": head}
    cfg = FollowupConfig(baselines=False, adversarial=False)
    res = run_followups(values, scores, mask, config=cfg, **kw)
    suite = to_flat(
        run_suite(
            values,
            scores,
            mask,
            config=ErasureConfig(num_random=1, aopc=False, sufficiency=False),
            **kw,
        )
    )
    alpha = np.asarray(masked_softmax(jnp.asarray(scores), mask))
    offsets = np.concatenate([[0], np.cumsum(suite["seq_len"])])
    np.testing.assert_array_equal(res.seq_len, suite["seq_len"])
    for i in range(values.shape[0]):
        m = mask[i]
        items = slice(offsets[i], offsets[i + 1])
        columns = {
            "gradient": suite["items/gradient"][items],
            "grad_x_attention": suite["items/gradient"][items] * suite["items/alpha"][items],
            "leave_one_out": suite["items/single_js"][items],
        }
        for j, name in enumerate(res.rankings):
            if name not in columns or m.sum() < 3:
                continue
            ref = stats.kendalltau(alpha[i, m], columns[name], variant="b").statistic
            if np.isnan(ref):
                assert np.isnan(res.agreement.tau[i, j])
            else:
                np.testing.assert_allclose(res.agreement.tau[i, j], ref, atol=1e-5)
    assert ("norm" in res.rankings) == closed
