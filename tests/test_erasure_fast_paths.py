"""The suite's fast paths against their obvious forms (sorts: test_sorting.py); class-major
removal summaries = full logit curves + argmax; blocked mask evaluation = one vmapped call;
max-based decision = argmax; scans = numpy cumsum; config switches drop their outputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import affine_head, assert_minimum_bounds_every_ranking, make_inputs

from attn_interp.erasure import ErasureConfig, closed_form, mask_path, run_suite, to_flat
from attn_interp.erasure.closed_form import (
    _UNROLL_CLASSES,
    closed_form_curves,
    closed_form_removal,
    closed_form_single_logits,
    closed_form_singles,
    removed_mass_at,
)
from attn_interp.erasure.decisions import argmax_rows, decision_differs, first_flip
from attn_interp.erasure.divergence import LN2, js_and_kl_from_change, js_and_kl_raw
from attn_interp.erasure.mask_path import (
    blocked_masked_head_logits,
    masked_head_logits,
    single_keep_masks,
)
from attn_interp.erasure.primitives import cumulative_sum, docs_per_block
from attn_interp.erasure.reference import js_and_kl_longdouble, np_js, np_log_softmax
from attn_interp.erasure.sorting import descending_order
from attn_interp.models.attention import masked_softmax


def test_descending_order_float32_ties_and_signed_zeros():
    scores = jnp.asarray([[0.5, -0.0, 0.0, 0.5, -1.0, 2.0]], jnp.float32)
    mask = jnp.asarray([[True, True, True, True, True, False]])
    np.testing.assert_array_equal(descending_order(scores, mask), [[0, 3, 1, 2, 4, 5]])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("exclusive", [False, True])
def test_scans_match_numpy_cumsum(dtype, reverse, exclusive):
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(3, 37, 4))
        got = np.asarray(cumulative_sum(jnp.asarray(x, dtype), 1, reverse, exclusive))
        flipped = np.flip(x, 1) if reverse else x
        want = np.cumsum(flipped, 1)
        want = np.flip(want, 1) if reverse else want
        if exclusive:
            want = want - x
        tol = 1e-12 if dtype == jnp.float64 else 2e-6
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_decision_differs_is_argmax_with_first_index_ties():
    rng = np.random.default_rng(2)
    logits = rng.integers(0, 3, size=(400, 5)).astype(np.float32)  # many ties
    y = rng.integers(0, 5, size=400)
    got = np.asarray(decision_differs(jnp.asarray(logits), jnp.asarray(y)))
    np.testing.assert_array_equal(got, np.argmax(logits, -1) != y)


def _removal_inputs(dtype, classes):
    rng = np.random.default_rng(3)
    b, n = 6, 9
    lengths = np.array([9, 5, 1, 2, 9, 7])
    mask = jnp.asarray(np.arange(n)[None] < lengths[:, None])
    alpha = masked_softmax(jnp.asarray(3 * rng.normal(size=(b, n)), dtype), mask)
    z = jnp.asarray(rng.normal(size=(b, n, classes)), dtype)
    bias = jnp.asarray(rng.normal(size=classes), dtype)
    y = jnp.argmax(jnp.einsum("bn,bnc->bc", alpha, z) + bias, -1).astype(jnp.int32)
    orders = descending_order(jnp.asarray(rng.normal(size=(b, 3, n)), dtype), mask[:, None])
    return alpha, z, bias, orders, y, jnp.sum(mask, -1)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("classes", [4, 40])  # unrolled classes, and the vectorised fallback
def test_closed_form_removal_matches_full_curves(dtype, classes):
    with jax.enable_x64(dtype == jnp.float64):
        alpha, z, bias, orders, y, length = args = _removal_inputs(dtype, classes)
        fast = closed_form_removal(*args, kept=True, probabilities=True)
        removed, kept, mass = closed_form_curves(alpha, z, bias, orders, kept=True)
        k_want, _ = first_flip(removed, y, length)
        np.testing.assert_array_equal(fast["k"], k_want)
        tol = dict(rtol=1e-10, atol=1e-12) if dtype == jnp.float64 else dict(rtol=1e-5, atol=1e-6)
        # The mass removed at any k (here: every k of every ordering) by the masked sum.
        every_k = jnp.broadcast_to(jnp.arange(1, orders.shape[-1] + 1), orders.shape)
        at_k = jax.vmap(lambda kk: removed_mass_at(alpha, orders, kk), in_axes=2, out_axes=2)
        np.testing.assert_allclose(at_k(every_k), mass, **tol)
        assert not np.asarray(removed_mass_at(alpha, orders, jnp.full(orders.shape[:2], -1))).any()
        for key, curve in (("p_removed", removed), ("p_kept", kept)):
            p = jax.nn.softmax(curve, -1)
            want = np.take_along_axis(np.asarray(p), np.asarray(y)[:, None, None, None], 3)[..., 0]
            np.testing.assert_allclose(fast[key], want, **tol)
        # Without probabilities only k comes back.
        assert set(closed_form_removal(*args)) == {"k"}


def test_closed_form_removal_blocks_equal_one_call(monkeypatch):
    args = _removal_inputs(jnp.float32, 4)

    def removal(block_bytes, probabilities):
        monkeypatch.setattr(closed_form, "REMOVAL_BLOCK_BYTES", block_bytes)
        fn = functools.partial(closed_form_removal, kept=True, probabilities=probabilities)
        return jax.jit(fn)(*args)

    per_doc = 3 * 5 * 9 * 4  # orderings x (classes + 1) x items x 4 bytes
    for probabilities in (False, True):
        fast = removal(1 << 30, probabilities)
        # One document per block, three, and at most four (two equal blocks of three).
        for block_bytes in (1, 3 * per_doc, 4 * per_doc):
            blocked = removal(block_bytes, probabilities)
            for key in fast:
                np.testing.assert_array_equal(blocked[key], fast[key], err_msg=key)
    # Equal blocks, no small remainder: 64 documents with room for 49 go as 2 x 32.
    assert docs_per_block(64, 1, 49) == 32 and docs_per_block(63, 1, 49) == 32
    assert docs_per_block(10, 1, 3) == 3 and docs_per_block(5, 100, 1) == 1
    assert docs_per_block(7, 1, 1 << 30) == 7


def test_blocked_mask_evaluation_equals_one_vmapped_call(monkeypatch):
    values, scores, mask, w, bias = make_inputs(4, jnp.float32)
    head = affine_head(w, bias)
    alpha = masked_softmax(scores, mask)
    n = mask.shape[1]
    want = masked_head_logits(head, values, alpha, single_keep_masks(mask))
    for block_bytes in (1, 3 * n * n * 4, 1 << 30):  # one document, three, all at once
        monkeypatch.setattr(mask_path, "MASK_BLOCK_BYTES", block_bytes)
        got = blocked_masked_head_logits(
            head, values, alpha, single_keep_masks, (mask,), masks_per_doc=n
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_config_switches_drop_their_outputs_and_keep_the_rest():
    values, scores, mask, w, bias = make_inputs(5, jnp.float32)
    full = to_flat(
        run_suite(values, scores, mask, affine=(w, bias), config=ErasureConfig(num_random=1))
    )
    assert_minimum_bounds_every_ranking(full)
    lean_cfg = ErasureConfig(num_random=1, aopc=False, sufficiency=False, minimum_flip_set=False)
    lean = to_flat(run_suite(values, scores, mask, affine=(w, bias), config=lean_cfg))
    dropped = set(full) - set(lean)
    assert "k_min" in dropped and "rank_attention_gap" in dropped
    assert "rank_attention_aopc_comp" in dropped and "items/comp_attention" in dropped
    assert not set(lean) - set(full)
    for key in lean:
        np.testing.assert_array_equal(lean[key], full[key], err_msg=key)
    with pytest.raises(ValueError, match="needs aopc"):
        ErasureConfig(aopc=False)
    with pytest.raises(ValueError, match="must not be empty"):
        ErasureConfig(aopc_fractions=())
    ErasureConfig(aopc=False, sufficiency=False, aopc_fractions=())  # no AOPC: fractions unused


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fused_js_and_kl_match_numpy_float64(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(6)
        p = rng.normal(size=(50, 1, 6)) * rng.choice([0.1, 3.0, 40.0], size=(50, 1, 1))
        scale = rng.choice([1e-7, 1e-4, 0.3, 30.0], size=(50, 7, 1))
        q = p + rng.normal(size=(50, 7, 6)) * scale  # (scale 40 logits: probabilities underflow)
        q[0, 0] = p[0, 0]  # identical outputs: JS = KL = 0
        pj, qj = jnp.asarray(p, dtype), jnp.asarray(q, dtype)
        lp, lq = np_log_softmax(np.broadcast_to(p, q.shape)), np_log_softmax(q)
        kl_want = np.sum(np.exp(lq) * (lq - lp), -1)
        js_want = np_js(np.broadcast_to(p, q.shape), q)
        tol = 1e-9 if dtype == jnp.float64 else 2e-5
        # General layout, and class-major `[50, classes, 7]` changes (the closed form's layout).
        change = jnp.swapaxes(qj - pj, 1, 2)
        for js, kl in (
            js_and_kl_raw(pj, qj),
            js_and_kl_from_change(pj.swapaxes(1, 2), change, axis=1),
        ):
            assert not np.isnan(js).any() and not np.isnan(kl).any()
            np.testing.assert_allclose(js, js_want, rtol=tol, atol=tol)
            np.testing.assert_allclose(kl, kl_want, rtol=tol, atol=tol)
            assert (np.asarray(js) > -1e-7).all() and (np.asarray(js) <= LN2 + 1e-6).all()
            assert abs(float(js[0, 0])) < 1e-7 and abs(float(kl[0, 0])) < 1e-7
            # Nearly equal outputs: JS ~ 1e-15, so only round-off is left.
            tiny = scale[..., 0] == 1e-7
            np.testing.assert_allclose(np.asarray(js)[tiny], js_want[tiny], atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_divergences_keep_relative_precision_for_tiny_changes(dtype):
    """An erasure among hundreds of items moves the logits by ~1e-4: JS ~ 1e-10, far below the
    float32 round-off (~1e-7) of the textbook formula. Computed from the change, it keeps its
    relative precision; so does KL, and both are exactly 0 for no change."""
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(11)
        lp = (3.0 * rng.normal(size=(400, 10))).astype(dtype)
        scale = rng.choice([1e-4, 1e-3, 1e-2, 0.3, 3.0], size=(400, 1))
        lq = (lp + scale * rng.normal(size=lp.shape)).astype(dtype)
        lq[0] = lp[0]
        js, kl = (
            np.asarray(x, np.float64) for x in js_and_kl_raw(jnp.asarray(lp), jnp.asarray(lq))
        )
        js_want, kl_want = js_and_kl_longdouble(lp, lq)
        assert js[0] == 0.0 and kl[0] == 0.0
        # float64: the extended-precision reference itself is good to ~1e-19 absolute.
        tol = dict(rtol=1e-5, atol=0.0) if dtype == jnp.float32 else dict(rtol=1e-9, atol=1e-18)
        np.testing.assert_allclose(js[1:], js_want[1:], **tol)
        np.testing.assert_allclose(kl[1:], kl_want[1:], **tol)
        assert js[1:].min() < 1e-9  # the regime the textbook float32 formula gets wrong


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("unit_mass", [True, False])
def test_closed_form_single_change_equals_the_difference_of_logits(dtype, unit_mass):
    """The change of the logits by each single erasure, computed directly (class-major), equals
    erased minus original logits (float64 reference; softmax weights taken to sum to 1 exactly,
    or weights of any mass renormalised; the bias alone for a one-item document), to round-off
    relative to the logits' size, also for the dominant item of near one-hot attention."""
    with jax.enable_x64(dtype == jnp.float64):
        alpha, z, bias, *_ = _removal_inputs(dtype, 5)
        alpha = np.asarray(alpha)
        if not unit_mass:
            scale = np.random.default_rng(3).uniform(0.5, 2.0, size=(alpha.shape[0], 1))
            alpha = (alpha * scale).astype(alpha.dtype)
        _, got = closed_form_singles(
            jnp.asarray(alpha), jnp.asarray(z, dtype), jnp.asarray(bias), unit_mass=unit_mass
        )
        with jax.enable_x64(True):
            a64, z64, b64 = (np.asarray(x, np.float64) for x in (alpha, z, bias))
            if unit_mass:
                a64 = a64 / a64.sum(-1, keepdims=True)
            base = np.einsum("bn,bnc->bc", a64, z64) + b64
            erased = np.asarray(closed_form_single_logits(a64, z64, b64))
        want = np.swapaxes(erased - base[:, None, :], 1, 2)
        assert got.shape == want.shape and got.dtype == dtype
        size = np.abs(base - b64)[..., None] + np.abs(np.swapaxes(z64, 1, 2))
        eps = 1e-13 if dtype == jnp.float64 else 1e-6
        err = np.abs(np.asarray(got, np.float64) - want)
        valid = np.broadcast_to((a64 > 0)[:, None, :], want.shape)
        assert (err <= eps * (1.0 + size))[valid].all()
        np.testing.assert_allclose(np.asarray(got)[2, :, 0], -(base[2] - b64), rtol=eps)  # n = 1


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("classes", [4, 40])  # class-major rows, and the array fallback
def test_single_erasure_rows_match_logits_and_argmax(dtype, classes):
    with jax.enable_x64(dtype == jnp.float64):
        alpha, z, bias, *_ = _removal_inputs(dtype, classes)
        logits = np.asarray(closed_form_single_logits(alpha, z, bias))
        rows, _ = closed_form_singles(alpha, z, bias, unit_mass=True)
        if classes <= _UNROLL_CLASSES:
            assert isinstance(rows, list) and len(rows) == classes
            np.testing.assert_array_equal(np.stack(rows, -1), logits)
        else:
            np.testing.assert_array_equal(rows, logits)
    rng = np.random.default_rng(7)
    tied = rng.integers(0, 3, size=(300, 5)).astype(np.float32)  # many ties: first index wins
    got = argmax_rows([jnp.asarray(tied[:, c]) for c in range(5)])
    np.testing.assert_array_equal(got, np.argmax(tied, -1))
