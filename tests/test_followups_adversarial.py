"""Adversarial attention: known answers, feasibility of every returned weighting, padding and
batching invariance, n = 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_interp.erasure.config import AffineParams
from attn_interp.followups.adversarial import (
    AdversarySettings,
    adversarial_attention,
    search_problem,
)
from attn_interp.followups.metrics import attention_js, output_tvd
from attn_interp.models.attention import masked_softmax

EPS = (0.01, 0.002, 0.05)


def _js_np(p, q):
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / m), 0.0)
        b = np.where(q > 0, q * np.log(q / m), 0.0)
    return 0.5 * (a.sum(-1) + b.sum(-1))


def _softmax_np(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tvd_np(la, lb):
    return 0.5 * np.abs(_softmax_np(la) - _softmax_np(lb)).sum(-1)


def _tanh_head(values, weights):
    """A non-affine head (tanh of the context, then a fixed projection)."""
    proj = jnp.linspace(-1.0, 1.0, values.shape[-1] * 3, dtype=values.dtype).reshape(-1, 3)
    ctx = jnp.einsum("bn,bnd->bd", weights, values)
    return jnp.tanh(ctx) @ proj * 4.0


def _tanh_head_np(values, weights):
    proj = np.linspace(-1.0, 1.0, values.shape[-1] * 3).reshape(-1, 3)
    return np.tanh(np.einsum("bn,bnd->bd", weights, values)) @ proj * 4.0


def _problem(seed, b=5, n=9, d=4, c=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(b, n, d)).astype(dtype)
    mask = rng.random((b, n)) < 0.7
    mask[:, 0] = True
    mask[0] = True
    alpha = np.asarray(masked_softmax(jnp.asarray(rng.normal(size=(b, n)) * 2, dtype), mask))
    kernel = rng.normal(size=(d, c)).astype(dtype)
    bias = rng.normal(size=c).astype(dtype)
    return values, alpha, mask, AffineParams(jnp.asarray(kernel), jnp.asarray(bias))


def _run(values, alpha, mask, **kw):
    kw.setdefault("epsilons", EPS)
    kw.setdefault("steps", 300)
    kw.setdefault("restarts", 4)
    ids = kw.pop("doc_ids", np.arange(values.shape[0]))
    return adversarial_attention(values, alpha, mask, ids, **kw)


def test_two_identical_values_reach_the_known_maximum():
    # Both items carry the same value vector: every split of the mass gives the same output, so
    # the maximum is JS(alpha, e_1), at the vertex with all mass on the lighter item.
    h = np.array([[0.3, -1.2, 0.7]], np.float32)
    values = np.repeat(h[None], 2, axis=1)  # [1, 2, 3]
    alpha = np.array([[0.9, 0.1]], np.float32)
    mask = np.ones((1, 2), bool)
    affine = AffineParams(jnp.asarray(np.eye(3, dtype=np.float32) * 3), jnp.zeros(3))
    expected = _js_np(alpha[0], [0.0, 1.0])  # 0.5256
    for kw in ({"affine": affine}, {"head": _tanh_head}):
        res = _run(values, alpha, mask, steps=300, **kw)
        np.testing.assert_allclose(np.asarray(res.js), expected, atol=2e-3)
        assert np.asarray(res.feasible).all()
        assert np.asarray(res.weights)[0, :, 1].min() > 0.99


def test_all_identical_values_reach_the_best_vertex():
    # Every item carries the same value vector: the output never changes, so the maximum of the
    # (convex) JS over the simplex is at the vertex of the lightest item.
    rng = np.random.default_rng(3)
    b, n = 4, 5
    values = np.broadcast_to(rng.normal(size=(b, 1, 3)), (b, n, 3)).astype(np.float32)
    alpha = np.asarray(
        masked_softmax(jnp.asarray(rng.normal(size=(b, n)), jnp.float32), np.ones((b, n), bool))
    )
    affine = AffineParams(jnp.asarray(rng.normal(size=(3, 4)).astype(np.float32)), jnp.zeros(4))
    expected = _js_np(alpha, np.eye(n)[np.argmin(alpha, axis=1)])
    res = _run(values, alpha, np.ones((b, n), bool), affine=affine, epsilons=(0.01,), steps=300)
    np.testing.assert_allclose(np.asarray(res.js)[:, 0], expected, atol=3e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine_head", [True, False])
def test_every_returned_weighting_is_feasible(dtype, affine_head):
    with jax.enable_x64(dtype == np.float64):
        values, alpha, mask, affine = _problem(1, dtype=dtype)
        kw = {"affine": affine} if affine_head else {"head": _tanh_head}
        res = _run(values, alpha, mask, **kw)
        w = np.asarray(res.weights, np.float64)  # [B, E, n]
        js = np.asarray(res.js, np.float64)
    assert w.shape == (5, len(EPS), 9)
    assert np.all(w[~np.broadcast_to(mask[:, None, :], w.shape)] == 0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert np.all(w >= 0)
    if affine_head:
        z = np.einsum(
            "bnd,dc->bnc", values.astype(np.float64), np.asarray(affine.kernel, np.float64)
        )
        bias = np.asarray(affine.bias, np.float64)
        base = np.einsum("bn,bnc->bc", alpha, z) + bias
        new = np.einsum("ben,bnc->bec", w, z) + bias
    else:
        base = _tanh_head_np(values.astype(np.float64), alpha.astype(np.float64))
        new = np.stack(
            [_tanh_head_np(values.astype(np.float64), w[:, e]) for e in range(w.shape[1])], 1
        )
    tvd = _tvd_np(base[:, None, :], new)
    slack = 1e-6 if dtype == np.float32 else 1e-12
    assert np.all(tvd <= np.asarray(EPS)[None, :] + slack)
    np.testing.assert_allclose(js, _js_np(alpha[:, None, :], w), atol=1e-5)
    # The search finds real adversaries (documents with several items), and the larger budget
    # never does worse.
    assert np.median(js[:, 0]) > 0.05
    order = np.argsort(EPS)
    assert np.all(np.diff(js[:, order], axis=1) >= -1e-6)


def test_padding_and_batching_do_not_change_the_result():
    values, alpha, mask, affine = _problem(2)
    ids = np.array([7, 3, 11, 5, 2])
    res = _run(values, alpha, mask, affine=affine, doc_ids=ids)
    pad = 7
    res_pad = _run(
        np.pad(values, ((0, 0), (0, pad), (0, 0))),
        np.pad(alpha, ((0, 0), (0, pad))),
        np.pad(mask, ((0, 0), (0, pad))),
        affine=affine,
        doc_ids=ids,
    )
    np.testing.assert_allclose(np.asarray(res_pad.js), np.asarray(res.js), atol=2e-4)
    np.testing.assert_array_equal(np.asarray(res_pad.weights)[..., 9:], 0.0)
    one = _run(values[3:4], alpha[3:4], mask[3:4], affine=affine, doc_ids=ids[3:4])
    np.testing.assert_allclose(np.asarray(one.js)[0], np.asarray(res.js)[3], atol=2e-4)


def test_single_item_gives_zero_divergence():
    values, alpha, mask, affine = _problem(4)
    mask[1] = False
    mask[1, 4] = True  # one valid item, not at position 0
    alpha = np.asarray(masked_softmax(jnp.asarray(alpha), mask))
    res = _run(values, alpha, mask, affine=affine)
    assert np.all(np.asarray(res.js)[1] == 0.0)
    assert not np.asarray(res.feasible)[1].any()
    np.testing.assert_array_equal(np.asarray(res.weights)[1], np.broadcast_to(alpha[1], (3, 9)))


def test_bad_arguments_are_refused():
    values, alpha, mask, affine = _problem(5)
    with pytest.raises(ValueError, match="head"):
        adversarial_attention(values, alpha, mask, np.arange(5))
    with pytest.raises(ValueError, match="epsilons"):
        adversarial_attention(values, alpha, mask, np.arange(5), affine=affine, epsilons=(0.0,))


def _reference_loss(problem_args, settings, head, affine):
    """The search's loss written plainly and differentiated by jax.grad: -JS + penalty * hinge."""
    values, alpha, mask = problem_args
    rows = mask[:, None, :]
    eps = jnp.repeat(jnp.asarray(settings.epsilons, alpha.dtype), settings.restarts)[None, :]
    target = settings.target_fraction * eps

    def logits_of(w):
        if affine is None:
            return jnp.stack([head(values, w[:, r]) for r in range(w.shape[1])], 1)
        return jnp.einsum("bsn,bnd,dc->bsc", w, values, affine.kernel) + affine.bias

    def loss(theta):
        q = jnp.where(rows, jax.nn.softmax(jnp.where(rows, theta, -jnp.inf), -1), 0.0)
        log_q = jnp.where(rows, jax.nn.log_softmax(jnp.where(rows, theta, -1e30), -1), 0.0)
        js = attention_js(alpha[:, None, :], q, rows, log_q=log_q)
        tvd = output_tvd(logits_of(alpha[:, None, :]), logits_of(q))
        return jnp.sum(-js + settings.penalty * jax.nn.relu(tvd / target - 1.0))

    return loss


@pytest.mark.parametrize(
    "dtype, affine_head", [(np.float32, True), (np.float64, True), (np.float64, False)]
)
def test_written_out_gradient_matches_autodiff(dtype, affine_head):
    # Random logits of several scales (large ones put TVD past the hinge, peaked ones underflow
    # alpha~ at some items), padding at random positions, a document with one valid item, and
    # alpha with exact zeros at valid items.
    with jax.enable_x64(dtype == np.float64):
        values, _, mask, affine = _problem(6, b=6, dtype=dtype)
        mask[2] = False
        mask[2, 3] = True
        scores = np.random.default_rng(8).normal(size=mask.shape) * 2
        scores[3, np.flatnonzero(mask[3])[:2]] = -1e4  # exp underflows to 0
        alpha = np.asarray(masked_softmax(jnp.asarray(scores, dtype), mask))
        assert np.sum((alpha == 0) & mask) == 2
        settings = AdversarySettings(
            epsilons=(0.01, 0.2),
            restarts=3,
            steps=10,
            learning_rate=0.3,
            penalty=10.0,
            target_fraction=0.8,
            seed=0,
        )
        head = None if affine_head else _tanh_head
        evaluate = jax.jit(
            lambda t: search_problem(
                values,
                alpha,
                mask,
                np.arange(6),
                affine if affine_head else None,
                head=head,
                settings=settings,
            ).evaluate(t)
        )
        rng = np.random.default_rng(7)
        scale = np.array([0.1, 1.0, 5.0, 40.0, 1e3, 3.0])[None, :, None]
        theta = jnp.asarray(rng.normal(size=(6, 6, 9)) * scale, dtype)
        grad, q, js, tvd = evaluate(theta)
        loss = _reference_loss(
            (values, alpha, mask), settings, _tanh_head, affine if affine_head else None
        )
        expected = jax.jit(jax.grad(loss))(theta)
    assert np.any(np.asarray(tvd) > 0.8 * 0.2) and np.any(np.asarray(tvd) < 0.8 * 0.01)
    assert np.any((np.asarray(q) == 0) & mask[:, None, :])  # underflowed weights
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(expected), **tol)
    np.testing.assert_array_equal(np.asarray(grad)[~np.broadcast_to(mask[:, None], grad.shape)], 0)
    np.testing.assert_allclose(js, _js_np(alpha[:, None, :], np.asarray(q)), atol=1e-5)
