"""Decisions read off logits: does the argmax differ from the prediction, p(prediction), the
first flip along a removal curve, and argmax over class-major rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def decision_differs(logits: jax.Array, predicted: jax.Array) -> jax.Array:
    """`argmax(logits, -1) != predicted` (first index wins ties) by two max reductions.

    logits `[..., classes]`, predicted int `[...]` (broadcastable). XLA:CPU reduces an argmax
    (a value-index pair) several times slower than a plain max.
    """
    c = jnp.arange(logits.shape[-1])
    y = predicted[..., None]
    l_y = jnp.sum(jnp.where(c == y, logits, 0.0), axis=-1)
    below = jnp.max(jnp.where(c < y, logits, -jnp.inf), axis=-1)
    above = jnp.max(jnp.where(c > y, logits, -jnp.inf), axis=-1)
    return (below >= l_y) | (above > l_y)


def predicted_probability(logits: jax.Array, predicted: jax.Array) -> jax.Array:
    """softmax(logits)[predicted] via log-softmax: logits `[..., classes]`, predicted int
    broadcastable to `[...]`. Returns `[...]`."""
    c = jnp.arange(logits.shape[-1])
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.exp(jnp.sum(jnp.where(c == predicted[..., None], log_p, 0.0), axis=-1))


def first_flip(
    logits: jax.Array, predicted: jax.Array, length: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """First k >= 1 whose decision differs from `predicted`, over k = 1..length.

    logits `[batch, R, items, classes]` (entry k-1 = after k removals), predicted `[batch]`,
    length `[batch]`. Returns (k `[batch, R]` int32 or -1, flipped-at-k bool `[batch, R, items]`).
    """
    n = logits.shape[2]
    k_all = jnp.arange(1, n + 1, dtype=jnp.int32)[None, None, :]
    flips = decision_differs(logits, predicted[:, None, None]) & (k_all <= length[:, None, None])
    k = jnp.min(jnp.where(flips, k_all, n + 1), axis=-1)
    return jnp.where(k <= n, k, -1).astype(jnp.int32), flips


def argmax_rows(rows: list[jax.Array]) -> jax.Array:
    """`argmax` over classes given one array per class (first index wins ties; finite values).

    rows: per-class arrays of one shape `[...]`. Returns int32 `[...]`.
    """
    best, index = rows[0], jnp.zeros(rows[0].shape, jnp.int32)
    for c, row in enumerate(rows[1:], start=1):
        take = row > best
        best, index = jnp.where(take, row, best), jnp.where(take, c, index)
    return index
