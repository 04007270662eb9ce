"""Divergences between output distributions given as logits, in nats, from log-probabilities."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LN2 = math.log(2.0)


def _kl_from_log_probs(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """Sum_c p_c (log p_c - log q_c) over the last axis; terms with p_c == 0 count as 0."""
    p = jnp.exp(log_p)
    terms = jnp.where(p > 0, p * (log_p - log_q), 0.0)
    return jnp.sum(terms, axis=-1)


def kl_divergence_raw(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
    """KL(softmax(a) || softmax(b)) in nats, not clipped (may be a tiny negative from round-off).

    logits_a, logits_b: `[..., classes]`. Returns `[...]`.
    """
    return _kl_from_log_probs(jax.nn.log_softmax(logits_a, -1), jax.nn.log_softmax(logits_b, -1))


def js_divergence_raw(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """Jensen-Shannon divergence in nats, not clipped. `[..., classes]` -> `[...]`."""
    return js_and_kl_raw(logits_p, logits_q)[0]


def js_and_kl_raw(logits_p: jax.Array, logits_q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(JS(p, q), KL(q || p)) in nats, not clipped, from one log-softmax of each input.

    The suite's single erasures: p the original output, q the modified one. Same formulas as
    `js_divergence_raw` and `kl_divergence_raw` (log m by logaddexp, so equal distributions give
    exactly 0). `[..., classes]` -> two `[...]`.
    """
    log_p = jax.nn.log_softmax(logits_p, -1)
    log_q = jax.nn.log_softmax(logits_q, -1)
    log_m = jnp.logaddexp(log_p, log_q) - LN2
    js = 0.5 * _kl_from_log_probs(log_p, log_m) + 0.5 * _kl_from_log_probs(log_q, log_m)
    return js, _kl_from_log_probs(log_q, log_p)


def kl_divergence(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
    """KL(softmax(a) || softmax(b)) in nats, clipped at 0.

    The erasure suite records KL(modified || original), i.e. `kl_divergence(modified, original)`.
    logits_a, logits_b: `[..., classes]`. Returns `[...]`.
    """
    return jnp.maximum(kl_divergence_raw(logits_a, logits_b), 0.0)


def js_divergence(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """Jensen-Shannon divergence between softmax(p) and softmax(q) in nats, clipped to [0, ln 2].

    Computed from log-probabilities (never NaN for finite logits). Use `js_divergence_raw` to count
    the round-off negatives that the clip removes.
    logits_p, logits_q: `[..., classes]`. Returns `[...]`.
    """
    return jnp.clip(js_divergence_raw(logits_p, logits_q), 0.0, LN2)
