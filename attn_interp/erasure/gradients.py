"""Gradient of p(prediction) in the attention weights: closed form (affine head) and autodiff
(any head), both formed without the cancellation of 1 - p on confident predictions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attn_interp.erasure.primitives import HIGHEST, Head


def _probability_parts(logits: jax.Array, predicted: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(p_yhat `[batch, 1]`, the other classes' probabilities `[batch, classes]` with 0 at yhat),
    from log-probabilities: exact even where p_yhat rounds to 1."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    is_y = jnp.arange(logits.shape[-1])[None, :] == predicted[:, None]
    p_y = jnp.exp(jnp.sum(jnp.where(is_y, log_p, 0.0), axis=-1, keepdims=True))
    return p_y, jnp.where(is_y, 0.0, jnp.exp(log_p))


def affine_attention_gradient(
    z: jax.Array, weights: jax.Array, mask: jax.Array, bias: jax.Array, predicted: jax.Array
) -> jax.Array:
    """Closed-form g_i = d p_yhat / d weights_i = p_yhat (z_{i,yhat} - sum_c p_c z_{i,c}) (paper_notes.md §6.3).

    Computed as p_yhat sum_{c != yhat} p_c (z_{i,yhat} - z_{i,c}): the direct form subtracts two
    nearly equal numbers when p_yhat is close to 1 (float32 gives 0 once 1 - p_yhat < 6e-8).
    z `[batch, items, classes]`, weights `[batch, items]` (free inputs, no renormalisation),
    mask `[batch, items]`, bias `[classes]`, predicted int `[batch]`. Returns `[batch, items]`, 0 at
    padding.
    """
    logits = jnp.einsum("bn,bnc->bc", weights, z, precision=HIGHEST) + bias
    p_y, others = _probability_parts(logits, predicted)
    z_y = jnp.take_along_axis(z, predicted[:, None, None], axis=2)  # [B, n, 1]
    g = p_y * jnp.einsum("bnc,bc->bn", z_y - z, others, precision=HIGHEST)
    return jnp.where(mask, g, 0.0)


def attention_gradient(
    head: Head, values: jax.Array, weights: jax.Array, mask: jax.Array, predicted: jax.Array
) -> jax.Array:
    """d p_yhat / d weights by autodiff (`jax.vjp` of the head), weights as free inputs (no
    renormalisation inside).

    The cotangent d p_yhat / d logits is formed without cancellation: p_yhat sum_{c != yhat} p_c
    at yhat and -p_yhat p_c elsewhere (softmax's own derivative takes p_yhat (1 - p_yhat), which
    is 0 in float32 on confident predictions). values `[batch, items, dim]`, weights
    `[batch, items]`, predicted int `[batch]`. Returns `[batch, items]`, 0 at padding.
    """
    logits, pullback = jax.vjp(lambda w: head(values, w), weights)
    p_y, others = _probability_parts(logits, predicted)
    is_y = jnp.arange(logits.shape[-1])[None, :] == predicted[:, None]
    cotangent = p_y * jnp.where(is_y, jnp.sum(others, axis=-1, keepdims=True), -others)
    (grad,) = pullback(cotangent.astype(logits.dtype))
    return jnp.where(mask, grad, 0.0)
