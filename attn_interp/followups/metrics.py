"""Distances between attention distributions and between output distributions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attn_interp.erasure.divergence import LN2


def masked_softmax_and_log(logits: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(softmax, log softmax) of `logits [..., items]` over the True positions of `mask`, both 0
    elsewhere (finite, so gradients stay finite), from one exp per item. A row without valid
    items gives zeros."""
    neg = jnp.where(mask, logits, -jnp.inf)
    top = jnp.max(neg, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    shifted = jnp.where(mask, logits - top, -jnp.inf)
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=-1, keepdims=True)
    total = jnp.where(total > 0, total, 1.0)
    return e / total, jnp.where(mask, shifted - jnp.log(total), 0.0)


def attention_js(
    p: jax.Array, q: jax.Array, mask: jax.Array, log_q: jax.Array | None = None
) -> jax.Array:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) between attention distributions
    p, q `[..., items]` over the valid items of mask. Zero weights contribute nothing (0 log 0 = 0);
    pass `log_q` (e.g. a log-softmax) to keep the gradient in q finite where q underflows.
    Returns `[...]`."""
    mask = mask.astype(bool)
    p = jnp.where(mask, p, 0.0)
    q = jnp.where(mask, q, 0.0)
    s = p + q
    log_m = jnp.log(jnp.where(s > 0, s, 1.0)) - LN2
    if log_q is None:
        log_q = jnp.log(jnp.where(q > 0, q, 1.0))
    log_p = jnp.log(jnp.where(p > 0, p, 1.0))
    kl_p = jnp.where(p > 0, p * (log_p - log_m), 0.0)
    kl_q = jnp.where(q > 0, q * (log_q - log_m), 0.0)
    return jnp.clip(0.5 * jnp.sum(kl_p + kl_q, axis=-1), 0.0, LN2)


def output_tvd(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """Total variation distance 1/2 sum_c |p_c - q_c| between softmax outputs of logits
    `[..., classes]` (broadcastable). Returns `[...]`."""
    p = jax.nn.softmax(logits_p, axis=-1)
    q = jax.nn.softmax(logits_q, axis=-1)
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)
