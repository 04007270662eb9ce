"""Divergences between output distributions given as logits, in nats.

Both divergences are computed from the *change* of the logits, delta = modified - original, so
they keep their relative precision when the change is small: an erasure that moves the logits by
1e-4 gives a JS divergence of ~1e-9, far below the ~1e-7 absolute round-off of the textbook
formula (sum p log p - 2 m log m + ... in float32), whose result would be noise. With
r_c = log q_c - log p_c (accurate from delta with `expm1` / `log1p`) and t_c = tanh(r_c / 2):

* JS(p, q) = sum_c m_c h(t_c), m = (p + q) / 2, h(t) = t atanh(t) + log(1 - t^2) / 2 >= 0;
* KL(q || p) = sum_c q_c g(-r_c), g(u) = e^u - 1 - u >= 0 (the e^u - 1 terms sum to 0).

Every class contributes a non-negative term, so there is no cancellation across classes; each
term is evaluated without cancellation too (series for g at small |u|, two forms of log cosh).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LN2 = math.log(2.0)
# g(u) = sum_{k>=2} u^k / k! for |u| < _SERIES_RADIUS: terms up to u^10 (float32), u^18 (float64).
_SERIES_RADIUS = 0.5
_LN3 = math.log(3.0)  # |r| < ln 3  <=>  |tanh(r / 2)| < 1/2


def _horner(x: jax.Array, coefficients: list[float]) -> jax.Array:
    """sum_k coefficients[k] x^k by Horner's rule."""
    acc = jnp.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = acc * x + c
    return acc


def _js_series(t2: jax.Array) -> jax.Array:
    """h(t) = sum_{k>=1} t^{2k} / (2k (2k - 1)) = ((1+t) log(1+t) + (1-t) log(1-t)) / 2, given
    t^2 <= 1/4: terms up to t^18 (float32), t^46 (float64)."""
    last = 9 if jnp.dtype(t2.dtype).itemsize <= 4 else 23
    return _horner(t2, [1.0 / (2 * k * (2 * k - 1)) for k in range(1, last + 1)]) * t2


def _expm1_minus_identity(u: jax.Array) -> jax.Array:
    """g(u) = e^u - 1 - u for |u| <= 1/2 by its Taylor series (no cancellation)."""
    last = 10 if jnp.dtype(u.dtype).itemsize <= 4 else 18
    return _horner(u, [1.0 / math.factorial(k) for k in range(2, last + 1)]) * u * u


def js_and_kl_from_change(
    logits_p: jax.Array, delta: jax.Array, axis: int = -1
) -> tuple[jax.Array, jax.Array]:
    """(JS(p, q), KL(q || p)) in nats for p = softmax(l), q = softmax(l + delta).

    logits_p: the original logits l, broadcastable to `delta`; delta: the change of the logits
    (e.g. `[batch, items, classes]`); `axis`: the class axis (a middle axis, e.g. of a class-major
    `[batch, classes, items]` array, keeps the work vectorised along items). Returns two arrays
    without the class axis, both >= 0 (JS <= ln 2 up to round-off), never NaN for finite input;
    a class whose logit is -inf with a change of 0 counts as absent. Small changes keep their
    relative precision (see the module docstring).
    """
    delta = jnp.asarray(delta)
    logits_p = jnp.asarray(logits_p, delta.dtype)

    def total(x):
        return jnp.sum(x, axis, keepdims=True)

    log_p = jax.nn.log_softmax(logits_p, axis)
    p = jnp.exp(log_p)
    logits_q = logits_p + delta
    shifted_q = logits_q - jnp.max(logits_q, axis, keepdims=True)
    e = jnp.exp(shifted_q)
    sum_e = total(e)
    q = e / sum_e
    # r = log q - log p. Small changes: w = delta - max delta <= 0 and
    # log sum_c p_c e^{w_c} = log1p(A), A = sum_c p_c expm1(w_c) in (-1, 0] (no cancellation).
    # Large changes (A <= -1/2): the log-softmax difference, exact enough there.
    w = delta - jnp.max(delta, axis, keepdims=True)
    a = total(p * jnp.expm1(w))
    r = jnp.where(
        a > -0.5,
        w - jnp.log1p(jnp.maximum(a, -0.5)),
        shifted_q - jnp.log(sum_e) - log_p,
    )
    r = jnp.where((p > 0) | (q > 0), r, 0.0)  # a class absent from both (e.g. -inf logits)
    abs_r = jnp.abs(r)
    abs_t = jnp.tanh(0.5 * abs_r)  # |t|, t = tanh(r / 2) = (q - p) / (q + p)
    decay = jnp.exp(-abs_r)
    # h(t) = t atanh t + log(1 - t^2) / 2: its series in t^2 for |t| < 1/2 (|r| < ln 3), else
    # ln 2 - log(1 + e^{-|r|}) - |r| e^{-|r|} / (1 + e^{-|r|}) (no cancellation either way).
    small = abs_r < _LN3
    h = jnp.where(
        small,
        _js_series(jnp.where(small, abs_t * abs_t, 0.0)),
        LN2 - jnp.log(1.0 + decay) - abs_r * decay / (1.0 + decay),
    )
    js = jnp.sum(0.5 * (p + q) * jnp.maximum(h, 0.0), axis)
    # q g(-r): the series near 0; else q (e^{-r} - 1) + q r with q (e^{-r} - 1) = (e^{-|r|} - 1) q
    # (r >= 0) or (1 - e^{-|r|}) p (r < 0), which stays finite when q underflows.
    series = abs_r < _SERIES_RADIUS
    g = _expm1_minus_identity(jnp.where(series, -r, 0.0))
    far = (decay - 1.0) * jnp.where(r >= 0, q, -p) + q * r
    kl = jnp.sum(jnp.maximum(jnp.where(series, q * g, far), 0.0), axis)
    return js, kl


def js_and_kl_raw(logits_p: jax.Array, logits_q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(JS(p, q), KL(q || p)) in nats for logits `[..., classes]` (broadcastable), from the change
    `logits_q - logits_p` (`js_and_kl_from_change`). Returns two `[...]` arrays; "raw": not
    clipped to [0, ln 2] (the terms are >= 0 by construction, so both are >= 0)."""
    logits_p, logits_q = jnp.asarray(logits_p), jnp.asarray(logits_q)
    delta = jnp.where(logits_q == logits_p, 0.0, logits_q - logits_p)  # -inf in both: no change
    return js_and_kl_from_change(logits_p, delta)


def kl_divergence_raw(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
    """KL(softmax(a) || softmax(b)) in nats, not clipped. `[..., classes]` -> `[...]`."""
    return js_and_kl_raw(logits_b, logits_a)[1]


def js_divergence_raw(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """Jensen-Shannon divergence in nats, not clipped. `[..., classes]` -> `[...]`."""
    return js_and_kl_raw(logits_p, logits_q)[0]


def kl_divergence(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
    """KL(softmax(a) || softmax(b)) in nats, clipped at 0.

    The erasure suite records KL(modified || original), i.e. `kl_divergence(modified, original)`.
    logits_a, logits_b: `[..., classes]`. Returns `[...]`.
    """
    return jnp.maximum(kl_divergence_raw(logits_a, logits_b), 0.0)


def js_divergence(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
    """Jensen-Shannon divergence between softmax(p) and softmax(q) in nats, clipped to [0, ln 2].

    Never NaN for finite logits; keeps its relative precision for tiny changes.
    logits_p, logits_q: `[..., classes]`. Returns `[...]`.
    """
    return jnp.clip(js_divergence_raw(logits_p, logits_q), 0.0, LN2)
