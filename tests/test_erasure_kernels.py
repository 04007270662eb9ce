"""Erasure kernels: closed form = mask path = the literal sequential reference; gradients; JS;
minimum flip set against brute force; random comparison items."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import C, D, affine_head, make_inputs

from attn_interp.erasure import js_divergence, kl_divergence, minimum_flip_set
from attn_interp.erasure.closed_form import (
    closed_form_curves,
    closed_form_single_logits,
    item_logits,
)
from attn_interp.erasure.decisions import first_flip
from attn_interp.erasure.divergence import LN2, js_divergence_raw
from attn_interp.erasure.gradients import affine_attention_gradient, attention_gradient
from attn_interp.erasure.mask_path import masked_head_logits, prefix_keep_masks, single_keep_masks
from attn_interp.erasure.random_draws import (
    comparison_uniforms,
    random_orderings,
    random_other_items,
)
from attn_interp.erasure.reference import (
    SequentialReference,
    np_js,
    np_log_softmax,
    stable_descending,
)
from attn_interp.models.attention import masked_softmax


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_closed_form_equals_mask_path_equals_sequential_reference(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        values, scores, mask, w, bias = make_inputs(0, dtype)
        tol = dict(rtol=1e-9, atol=1e-9) if dtype == jnp.float64 else dict(rtol=2e-4, atol=2e-5)
        head = affine_head(w, bias)
        alpha = masked_softmax(scores, mask)
        assert alpha.dtype == dtype
        np.testing.assert_allclose(np.sum(alpha, -1)[np.asarray(mask).any(-1)], 1.0, rtol=1e-6)
        z = item_logits(values, w)
        ref = SequentialReference(head)
        mask_np = np.asarray(mask)
        length = mask_np.sum(-1)
        y = jnp.argmax(head(values, alpha), -1)

        # Single erasures.
        closed = np.asarray(closed_form_single_logits(alpha, z, bias))
        masked = np.asarray(masked_head_logits(head, values, alpha, single_keep_masks(mask)))
        slow = ref.single_erasures(values, alpha, mask)
        np.testing.assert_allclose(closed[mask_np], slow[mask_np], **tol)
        np.testing.assert_allclose(masked[mask_np], slow[mask_np], **tol)
        # n = 1: erasing the only item leaves the bias.
        np.testing.assert_allclose(closed[3, 0], np.asarray(bias), **tol)

        # Prefix removals along attention, gradient and a shuffled ordering.
        grad = np.asarray(affine_attention_gradient(z, alpha, mask, bias, y))
        rng = np.random.default_rng(1)
        shuffled = np.stack(
            [np.r_[rng.permutation(L), np.arange(L, mask.shape[1])] for L in length]
        )
        orders = np.stack(
            [
                stable_descending(np.asarray(alpha), mask_np),
                stable_descending(grad, mask_np),
                shuffled,
            ],
            axis=1,
        )
        orders_j = jnp.asarray(orders, jnp.int32)
        removed, kept, mass = closed_form_curves(alpha, z, bias, orders_j)
        keep = prefix_keep_masks(orders_j, mask, keep_top=False)
        b, r, n = orders.shape
        via_mask = masked_head_logits(head, values, alpha, keep.reshape(b, -1, n)).reshape(
            b, r, n, -1
        )
        keep_top = prefix_keep_masks(orders_j, mask, keep_top=True)
        kept_mask = masked_head_logits(head, values, alpha, keep_top.reshape(b, -1, n)).reshape(
            b, r, n, -1
        )
        k_closed, _ = first_flip(removed, y, jnp.asarray(length))
        k_mask, _ = first_flip(via_mask, y, jnp.asarray(length))
        valid_k = np.arange(1, n + 1)[None, :] <= length[:, None]
        for j in range(r):
            slow = ref.removal(values, alpha, mask, orders[:, j], y, stop_at_flip=False)
            stop = ref.removal(values, alpha, mask, orders[:, j], y)
            np.testing.assert_allclose(
                np.asarray(removed)[:, j][valid_k], slow["logits"][valid_k], **tol
            )
            np.testing.assert_allclose(
                np.asarray(via_mask)[:, j][valid_k], slow["logits"][valid_k], **tol
            )
            np.testing.assert_array_equal(np.asarray(k_closed)[:, j], stop["k"])
            np.testing.assert_array_equal(np.asarray(k_mask)[:, j], stop["k"])
            flipped = stop["k"] > 0
            pm = np.take_along_axis(
                np.asarray(mass)[:, j], np.maximum(stop["k"] - 1, 0)[:, None], 1
            )[:, 0]
            np.testing.assert_allclose(pm[flipped], stop["probmass"][flipped], **tol)
            # Keeping only the top k = removing the rest: compare with explicit masks.
            np.testing.assert_allclose(
                np.asarray(kept)[:, j][valid_k], np.asarray(kept_mask)[:, j][valid_k], **tol
            )
        k_att = np.asarray(k_closed)[:, 0]
        assert k_att[7] == -1 and k_att[8] == length[8]  # never flips / bias-only flip at k = n
        assert k_att[3] == -1  # n = 1, prediction equals argmax(bias) or not: never below k = 1
        assert (k_att[k_att > 0] <= length[k_att > 0]).all()


def test_suffix_sums_stay_exact_on_peaky_attention():
    """Closed form vs float64 masks where 1 - cumsum would cancel catastrophically."""
    rng = np.random.default_rng(3)
    b, n = 4, 12
    values = rng.normal(size=(b, n, D)).astype(np.float32)
    scores = (30.0 * rng.normal(size=(b, n))).astype(np.float32)
    mask = np.ones((b, n), bool)
    w = rng.normal(size=(D, C)).astype(np.float32)
    bias = np.zeros(C, np.float32)
    alpha = masked_softmax(jnp.asarray(scores), jnp.asarray(mask))
    order = jnp.asarray(stable_descending(np.asarray(alpha), mask)[:, None, :], jnp.int32)
    removed, _, _ = closed_form_curves(
        alpha, item_logits(jnp.asarray(values), jnp.asarray(w)), jnp.asarray(bias), order
    )
    a64 = np.asarray(alpha, np.float64)
    z64 = values.astype(np.float64) @ w.astype(np.float64)
    for i in range(b):
        o = np.asarray(order)[i, 0]
        for k in range(1, n):
            keep = o[k:]
            if a64[i, keep].sum() > 0:
                want = (a64[i, keep] @ z64[i, keep]) / a64[i, keep].sum()
                np.testing.assert_allclose(
                    np.asarray(removed)[i, 0, k - 1], want, rtol=1e-4, atol=1e-4
                )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradient_autodiff_closed_form_and_finite_differences(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        values, scores, mask, w, bias = make_inputs(2, dtype)
        head = affine_head(w, bias)
        alpha = masked_softmax(scores, mask)
        y = jnp.argmax(head(values, alpha), -1)
        auto = np.asarray(attention_gradient(head, values, alpha, mask, y))
        closed = np.asarray(affine_attention_gradient(item_logits(values, w), alpha, mask, bias, y))
        tol = 1e-10 if dtype == jnp.float64 else 1e-5
        np.testing.assert_allclose(auto, closed, atol=tol, rtol=tol)
        assert (auto[~np.asarray(mask)] == 0).all()
        if dtype == jnp.float64:
            eps = 1e-6
            mask_np = np.asarray(mask)
            for i, j in [(0, 0), (0, 3), (1, 4), (5, 2), (6, 2)]:
                assert mask_np[i, j]
                e = jnp.zeros_like(alpha).at[i, j].set(eps)
                p_plus = jax.nn.softmax(head(values, alpha + e))[i, y[i]]
                p_minus = jax.nn.softmax(head(values, alpha - e))[i, y[i]]
                np.testing.assert_allclose(
                    auto[i, j], (p_plus - p_minus) / (2 * eps), rtol=1e-6, atol=1e-9
                )


def test_js_and_kl_properties():
    rng = np.random.default_rng(4)
    p = rng.normal(size=(200, 5)) * rng.choice([0.1, 3.0, 60.0], size=(200, 1))
    q = p + rng.normal(size=(200, 5)) * rng.choice([0.0, 1e-7, 1.0, 80.0], size=(200, 1))
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            pj, qj = jnp.asarray(p, dtype), jnp.asarray(q, dtype)
            raw = np.asarray(js_divergence_raw(pj, qj))
            js = np.asarray(js_divergence(pj, qj))
            assert np.isfinite(raw).all() and (raw >= -1e-7).all()
            assert (js >= 0).all() and (js <= LN2).all()
            np.testing.assert_allclose(js, np.asarray(js_divergence(qj, pj)), atol=1e-6)
            np.testing.assert_allclose(
                js, np.clip(np_js(p, q), 0, LN2), atol=1e-5 if dtype == jnp.float32 else 1e-12
            )
            kl = np.asarray(kl_divergence(qj, pj))
            lp, lq = np_log_softmax(p), np_log_softmax(q)
            want = np.sum(np.exp(lq) * (lq - lp), -1)
            np.testing.assert_allclose(kl, np.maximum(want, 0), rtol=1e-4, atol=1e-4)
    # A class impossible in both outputs (-inf logits) counts as absent.
    with_inf = np.concatenate([p[:20], np.full((20, 1), -np.inf)], 1)
    q_inf = np.concatenate([q[:20], np.full((20, 1), -np.inf)], 1)
    for fn in (js_divergence, kl_divergence):
        np.testing.assert_allclose(
            fn(jnp.asarray(with_inf), jnp.asarray(q_inf)),
            fn(jnp.asarray(p[:20]), jnp.asarray(q[:20])),
            rtol=1e-6,
            atol=1e-12,
        )
    # Disjoint supports reach ln 2.
    np.testing.assert_allclose(
        js_divergence(jnp.array([80.0, -80.0]), jnp.array([-80.0, 80.0])), LN2, rtol=1e-6
    )


def test_minimum_flip_set_matches_brute_force_over_all_subsets():
    rng = np.random.default_rng(5)
    b, n, c = 40, 6, 3
    lengths = rng.integers(1, n + 1, size=b)
    mask = np.arange(n)[None] < lengths[:, None]
    values = rng.normal(size=(b, n, D)) * mask[..., None]
    scores = 2.0 * rng.normal(size=(b, n))
    w = rng.normal(size=(D, c))
    bias = np.array([0.8, 0.0, -0.3])
    with jax.enable_x64(True):
        head = affine_head(jnp.asarray(w), jnp.asarray(bias))
        alpha = masked_softmax(jnp.asarray(scores), jnp.asarray(mask))
        y = np.asarray(jnp.argmax(head(jnp.asarray(values), alpha), -1))
        k_min, members = minimum_flip_set(values, alpha, mask, (w, bias), y)
        # Brute force through the explicit mask path: every non-empty subset of valid items.
        subsets = [s for r in range(1, n + 1) for s in itertools.combinations(range(n), r)]
        keep = np.ones((b, len(subsets), n), bool)
        for m, s in enumerate(subsets):
            keep[:, m, list(s)] = False
        keep &= mask[:, None, :]
        logits = np.asarray(masked_head_logits(head, jnp.asarray(values), alpha, jnp.asarray(keep)))
        flips = np.argmax(logits, -1) != y[:, None]
        sizes = np.array([len(s) for s in subsets])
        for i in range(b):
            ok = [
                m for m, s in enumerate(subsets) if set(s) <= set(range(lengths[i])) and flips[i, m]
            ]
            want = min(sizes[ok]) if ok else -1
            assert k_min[i] == want, (i, k_min[i], want)
            if want > 0:
                assert members[i].sum() == want
                m = subsets.index(tuple(np.flatnonzero(members[i])))
                assert flips[i, m]
        assert (k_min > 0).any() and (k_min == -1).any()


def test_random_comparison_items_follow_their_definitions():
    num_docs, n = 3000, 4
    u = comparison_uniforms(jnp.arange(num_docs), 7, 3)
    mask = jnp.ones((num_docs, n), bool)
    tops = jnp.asarray(np.random.default_rng(0).integers(0, n, size=(num_docs, 3)), jnp.int32)
    paper = np.asarray(random_other_items(u, mask, tops, "paper"))
    code = np.asarray(random_other_items(u, mask, tops, "code_compatible"))
    assert (paper != np.asarray(tops)).all() and ((paper >= 0) & (paper < n)).all()
    assert ((code >= 1) & (code <= n - 1)).all()
    counts = np.bincount(code.ravel(), minlength=n)
    np.testing.assert_allclose(counts[1:] / code.size, 1 / (n - 1), atol=0.02)
    # Paper mode: uniform over the n - 1 other positions, for each top.
    top0 = np.asarray(tops)[:, 0] == 0
    np.testing.assert_allclose(
        np.bincount(paper[top0, 0], minlength=n)[1:] / top0.sum(), 1 / 3, atol=0.05
    )
    short_tops = jnp.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]], jnp.int32)
    short_mask = jnp.arange(n)[None, :] < jnp.array([0, 1, 2])[:, None]
    short = np.asarray(random_other_items(u[:3], short_mask, short_tops, "paper"))
    np.testing.assert_array_equal(short, [[-1, -1, -1], [-1, -1, -1], [1, 0, 1]])


def test_random_orderings_are_uniform_permutations_independent_of_padding_and_batching():
    num_docs, n = 4000, 4
    lengths = np.array([0, 1, 2, 3] + [n] * (num_docs - 4))
    mask = np.arange(n)[None, :] < lengths[:, None]
    ids = jnp.arange(num_docs) * 7 + 3
    orders = np.asarray(random_orderings(jnp.asarray(mask), ids, 5, 2))  # [B, 2, n]
    assert orders.dtype == np.int32 and orders.shape == (num_docs, 2, n)
    for i in range(num_docs):  # valid positions first (a permutation of them), padding after
        for row in orders[i]:
            np.testing.assert_array_equal(np.sort(row[: lengths[i]]), np.arange(lengths[i]))
            np.testing.assert_array_equal(row[lengths[i] :], np.arange(lengths[i], n))
    # Uniform: each of the 24 permutations of 4 items about equally often, in both rows.
    full = orders[4:]
    codes = (full * np.array([64, 16, 4, 1])).sum(-1)  # [B, 2]
    for r in range(2):
        counts = np.unique(codes[:, r], return_counts=True)[1]
        assert counts.size == 24
        np.testing.assert_allclose(counts / full.shape[0], 1 / 24, atol=0.012)
    assert np.mean(codes[:, 0] == codes[:, 1]) < 0.08  # the rows are not copies
    # The same document gets the same ordering in another batch, at another padded width.
    wide = np.zeros((3, n + 5), bool)
    wide[:, :n] = mask[[2, 3, 10]]
    again = np.asarray(random_orderings(jnp.asarray(wide), ids[jnp.array([2, 3, 10])], 5, 2))
    for j, i in enumerate((2, 3, 10)):
        np.testing.assert_array_equal(again[j, :, : lengths[i]], orders[i, :, : lengths[i]])
    # Another seed gives other orderings.
    other = np.asarray(random_orderings(jnp.asarray(mask), ids, 6, 2))
    assert np.mean(np.all(other[4:] == orders[4:], axis=-1)) < 0.1
