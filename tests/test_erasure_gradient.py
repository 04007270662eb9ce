"""Gradient of the predicted probability with respect to the attention weights on confident
predictions (1 - p_yhat from 1e-2 down to 1e-12): closed form and mask path against float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import affine_head

from attn_interp.erasure import ErasureConfig, run_suite, to_flat
from attn_interp.erasure.closed_form import item_logits
from attn_interp.erasure.gradients import affine_attention_gradient, attention_gradient
from attn_interp.erasure.reference import affine_gradient_float64

GAPS = [1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12]  # 1 - p_yhat


def _confident_docs(classes: int, seed: int = 0):
    """One float32 document per entry of GAPS whose prediction y = 0 has 1 - p_y = that gap
    (the bias is shifted to reach it). Returns values [B, n, d], weights [B, n], kernel, biases
    [B, C] (one head per document)."""
    rng = np.random.default_rng(seed)
    b, n, d = len(GAPS), 6, 5
    values = rng.normal(size=(b, n, d)).astype(np.float32)
    weights = rng.dirichlet(np.ones(n), size=b).astype(np.float32)
    kernel = rng.normal(size=(d, classes)).astype(np.float32)
    base = np.einsum("bn,bnd,dc->bc", weights.astype(np.float64), values, kernel.astype(np.float64))
    biases = np.zeros((b, classes))
    for i, gap in enumerate(GAPS):
        # log(p_y / p_c) chosen so that the other classes share `gap` equally.
        target = np.log((1 - gap) / (gap / (classes - 1)))
        biases[i, 1:] = base[i, 0] - base[i, 1:] - target
    return values, weights, kernel, biases.astype(np.float32)


def _log_p_y(values, weights, kernel, bias):
    """log p_0 = -log(1 + sum_{c > 0} exp(l_c - l_0)), without the cancellation of l_0 - lse."""
    logits = weights @ (values @ kernel) + bias
    return -np.log1p(np.sum(np.exp(logits[1:] - logits[0])))


@pytest.mark.parametrize("classes", [2, 5])
def test_reference_gradient_matches_finite_differences(classes):
    """The float64 reference against central differences of log p_y (p_y itself is too close
    to 1 for differences): d p_y = p_y d log p_y."""
    values, weights, kernel, biases = _confident_docs(classes)
    v, w, k = values.astype(np.float64), weights.astype(np.float64), kernel.astype(np.float64)
    eps = 1e-6
    for i, gap in enumerate(GAPS):
        g, log_p = affine_gradient_float64(values[i], weights[i], kernel, biases[i])
        np.testing.assert_allclose(1 - np.exp(log_p[0]), gap, rtol=1e-3)
        fd = np.empty_like(g)
        for j in range(len(g)):
            step = np.zeros_like(w[i])
            step[j] = eps
            up = _log_p_y(v[i], w[i] + step, k, biases[i])
            down = _log_p_y(v[i], w[i] - step, k, biases[i])
            fd[j] = np.exp(log_p[0]) * (up - down) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(g).max())


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradients_of_confident_predictions_keep_their_precision(classes, dtype):
    """Closed form and mask path (`jax.grad` route) within 1e-4 of max|g| of the float64 value at
    every gap, and the same gradient ordering."""
    values, weights, kernel, biases = _confident_docs(classes)
    with jax.enable_x64(dtype == jnp.float64):
        for i, gap in enumerate(GAPS):
            want, _ = affine_gradient_float64(values[i], weights[i], kernel, biases[i])
            v, w = jnp.asarray(values[i : i + 1], dtype), jnp.asarray(weights[i : i + 1], dtype)
            k, b = jnp.asarray(kernel, dtype), jnp.asarray(biases[i], dtype)
            mask = jnp.ones(w.shape, bool)
            y = jnp.zeros(1, jnp.int32)
            closed = affine_attention_gradient(item_logits(v, k), w, mask, b, y)
            masked = attention_gradient(affine_head(k, b), v, w, mask, y)
            for name, got in (("closed form", closed), ("mask path", masked)):
                got = np.asarray(got)[0]
                err = np.abs(got - want).max() / np.abs(want).max()
                assert err < 1e-4, (name, gap, err)
                np.testing.assert_array_equal(np.argsort(-got), np.argsort(-want))


def test_confident_document_from_the_issue_orders_by_gradient():
    """Logits [-13.15, 6.08] (1 - p_y ~ 4.5e-9): the gradient ordering is [2, 0, 1] in float32
    on both paths, as in float64 (not position order from a zero gradient)."""
    z = np.array([[[-10.0, 4.0], [-5.0, 3.0], [-12.0, 8.0]]], np.float32)  # [1, n, C], W = I
    weights = np.array([[0.45, 0.2, 0.35]], np.float32)
    logits = weights[0] @ z[0]
    bias = (np.array([-13.15, 6.08]) - logits).astype(np.float32)
    want, log_p = affine_gradient_float64(z[0], weights[0], np.eye(2, dtype=np.float32), bias, y=1)
    assert 4e-9 < -np.expm1(log_p[1]) < 5e-9
    assert np.argsort(-want).tolist() == [2, 0, 1]
    mask = np.ones((1, 3), bool)
    kw = dict(weights=weights, head=affine_head(jnp.eye(2), jnp.asarray(bias)))
    for method in ("closed_form", "mask"):
        cfg = ErasureConfig(num_random=0, method=method, aopc=False, sufficiency=False)
        res = to_flat(run_suite(z, None, mask, affine=(np.eye(2), bias), config=cfg, **kw))
        assert res["items/order_gradient"].tolist() == [2, 0, 1], method
        np.testing.assert_allclose(res["items/gradient"], want, rtol=1e-4)
