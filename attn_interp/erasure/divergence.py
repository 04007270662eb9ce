"""Divergences between output distributions given as logits, in nats, from log-probabilities."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

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


def _js_kl_terms(p, log_p, q, log_q) -> tuple[jax.Array, jax.Array]:
    """Per-class terms of 2 JS(p, q) and KL(q || p), given probabilities and log-probabilities.

    log m = log(p + q) - ln 2 is the one transcendental per entry (p + q > 0 wherever either is,
    so m never underflows). In the JS terms log p is taken of the rounded p itself, so p == q
    gives log m == log p up to one rounding (JS within ~1e-8 of 0); KL uses the log-softmax
    values, exact for tiny p. Terms with a zero probability count as 0.
    """
    log_m = jnp.log(p + q) - LN2
    js = jnp.where(p > 0, p * (jnp.log(p) - log_m), 0.0)
    js = js + jnp.where(q > 0, q * (log_q - log_m), 0.0)
    return js, jnp.where(q > 0, q * (log_q - log_p), 0.0)


def js_and_kl_raw(logits_p: jax.Array, logits_q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(JS(p, q), KL(q || p)) in nats, not clipped, with two transcendental functions per entry.

    The suite's single erasures: p the original output, q the modified one (`[..., classes]`,
    broadcastable; p typically one row per document). q and log q share one `exp` (softmax and
    log-softmax from the same shifted logits); see `_js_kl_terms` for the rest. Same quantities
    as `js_divergence_raw` and `kl_divergence_raw`. `[..., classes]` -> two `[...]`.
    """
    log_p = jax.nn.log_softmax(logits_p, -1)
    shifted = logits_q - jnp.max(logits_q, -1, keepdims=True)
    e = jnp.exp(shifted)
    total = jnp.sum(e, -1, keepdims=True)
    js, kl = _js_kl_terms(jnp.exp(log_p), log_p, e / total, shifted - jnp.log(total))
    return 0.5 * jnp.sum(js, -1), jnp.sum(kl, -1)


def js_and_kl_rows(logits_p: jax.Array, rows: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """`js_and_kl_raw` for class-major inputs: logits_p `[batch, classes]`, rows one `[batch, n]`
    array of modified logits per class (entry [b, i] of row c: class c of modified output i).

    Every reduction over classes is an elementwise operation across the rows, vectorised along
    n (the closed form's single erasures; about 1.3x faster on CPU than the `[batch, n, classes]`
    layout). Returns (JS, KL) `[batch, n]`, the same formulas as `js_and_kl_raw`.
    """
    log_p = jax.nn.log_softmax(logits_p, -1)
    p = jnp.exp(log_p)
    top = functools.reduce(jnp.maximum, rows)
    shifted = [row - top for row in rows]
    e = [jnp.exp(s) for s in shifted]
    total = sum(e)
    log_total, inv_total = jnp.log(total), 1.0 / total
    js = kl = 0.0
    for c, (s_c, e_c) in enumerate(zip(shifted, e, strict=True)):
        js_c, kl_c = _js_kl_terms(
            p[:, c, None], log_p[:, c, None], e_c * inv_total, s_c - log_total
        )
        js, kl = js + js_c, kl + kl_c
    return 0.5 * js, kl


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
