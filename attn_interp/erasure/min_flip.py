"""Exact minimum flip set for an affine head: per competing class, the fewest removals (largest
term first) whose survivors' suffix sum turns negative."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.closed_form import item_logits
from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.primitives import cumulative_sum
from attn_interp.erasure.sorting import (
    ascending_order,
    descending_keys,
    ranks_of,
    sort_descending_values,
)


def _flip_terms(z, alpha, mask, bias, predicted):
    """t_j = a_j (m_j + beta) per competing class: `[batch, items, classes]`, 0 at padding."""
    z_y = jnp.take_along_axis(z, predicted[:, None, None], axis=2)  # [B, n, 1]
    beta = bias[predicted][:, None] - bias[None, :]  # [B, C]
    t = alpha[..., None] * (z_y - z + beta[:, None, :])
    return jnp.where(mask[..., None], t, 0.0)


def _greedy_flip_counts(t, alpha, mask, predicted):
    """Per class c != y, the fewest removals (largest t first) that leave survivors with
    sum_T t < 0, or = 0 when c < y (argmax ties go to the first class). `[batch, classes]`,
    `items + 1` where no proper subset flips towards c.

    The survivors' sum is a suffix sum of the sorted terms, never total - prefix: under peaked
    attention the survivors hold a tiny share of the total, which the subtraction loses.
    """
    n, num_classes = t.shape[1], t.shape[2]
    length = jnp.sum(mask, axis=-1)
    valid = jnp.moveaxis(mask[..., None], 1, 2)  # [B, 1, n]
    t_cls = jnp.moveaxis(t, 1, 2)  # [B, C, n]
    # Only the sorted values are needed per class: a plain value sort, padding (-inf) last.
    t_sorted = sort_descending_values(jnp.where(valid, t_cls, -jnp.inf))
    t_sorted = jnp.where(jnp.isfinite(t_sorted), t_sorted, 0.0)
    rest = cumulative_sum(
        t_sorted, 2, True, exclusive=True
    )  # survivors' sum after k = 1..n removals
    # A tie keeps mass only if a survivor has t != 0 (the smallest term, always kept, is < 0) or
    # some weighted item has t = 0 (kept in place of weightless ones, see `_member_order`).
    smallest = jnp.min(jnp.where(valid, t_cls, jnp.inf), axis=2)
    weighted_zero = jnp.any(valid & (t_cls == 0) & (alpha[:, None, :] > 0), axis=2)
    lower = jnp.arange(num_classes)[None, :] < predicted[:, None]
    tie_flips = lower & ((smallest < 0) | weighted_zero)
    flips = (rest < 0) | ((rest == 0) & tie_flips[..., None])
    flips &= jnp.arange(1, n + 1)[None, None, :] <= (length - 1)[:, None, None]  # proper subsets
    k_c = jnp.where(jnp.any(flips, axis=2), jnp.argmax(flips, axis=2) + 1, n + 1)
    return jnp.where(jnp.arange(num_classes)[None, :] == predicted[:, None], n + 1, k_c)


def _member_order(t_best, alpha, mask):
    """Removal order of the best class's minimum set: t descending, and among t = 0 the
    weightless items first (a tie needs a weighted survivor). `[batch, items]`."""
    if jnp.dtype(t_best.dtype).itemsize > 4:
        key = descending_keys(t_best, mask)
        weighted = (mask & (alpha > 0)).astype(jnp.int32)
        return jnp.lexsort((weighted, key), axis=-1).astype(jnp.int32)
    # int32 keys: t = 0 maps to 0 and the smallest positive t to -2; -1 (-0.0) is unused.
    key = descending_keys(t_best, mask)
    key = jnp.where(mask & (t_best == 0) & (alpha <= 0), -1, key)
    return ascending_order(key)


def minimum_flip_set_from_z(
    z: jax.Array,
    alpha: jax.Array,
    mask: jax.Array,
    bias: jax.Array,
    predicted: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Smallest set of items whose removal (with renormalisation) changes the affine decision.

    z `[batch, items, classes]`, alpha `[batch, items]`, mask `[batch, items]`, bias `[classes]`,
    predicted int `[batch]`. For each competing class c: t_j = a_j (m_j + beta) with
    m_j = z_{j,y} - z_{j,c}, beta = b_y - b_c; removing the largest t first, class c overtakes y
    once the survivors' sum of t turns negative (`_greedy_flip_counts`). A set leaving no
    attention mass leaves the bias alone: that flips iff argmax(bias) != y, after removing every
    weighted item (all of them, or fewer when some weights are exactly 0). Returns (k_min int32
    `[batch]`, -1 when nothing flips; members bool `[batch, items]`, one minimum set).
    """
    n = z.shape[1]
    t = _flip_terms(z, alpha, mask, bias, predicted)
    k_c = _greedy_flip_counts(t, alpha, mask, predicted)
    best_class = jnp.argmin(k_c, axis=1)
    k_best = jnp.min(k_c, axis=1)
    weighted = mask & (alpha > 0)
    k_bias = jnp.sum(weighted, axis=-1).astype(jnp.int32)
    bias_flips = (jnp.argmax(bias) != predicted) & (k_bias >= 1) & (k_bias < k_best)
    found = (k_best <= n) & ~bias_flips
    k_min = jnp.where(found, k_best, jnp.where(bias_flips, k_bias, -1)).astype(jnp.int32)
    t_best = jnp.take_along_axis(t, best_class[:, None, None], axis=2)[..., 0]  # [B, n]
    rank = ranks_of(_member_order(t_best, alpha, mask))
    members = jnp.where(found[:, None], rank < k_best[:, None], bias_flips[:, None] & weighted)
    return k_min, members & mask


@jax.jit
def _min_flip(values, weights, mask, kernel, bias, predicted):
    z = item_logits(values, kernel)
    return minimum_flip_set_from_z(z, weights, mask, bias, predicted)


def minimum_flip_set(
    values: jax.Array | np.ndarray,
    weights: jax.Array | np.ndarray,
    mask: jax.Array | np.ndarray,
    affine: AffineParams | tuple,
    predicted: jax.Array | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest number of items whose removal (zero + renormalise) changes an affine decision.

    Args:
      values: `[batch, items, dim]`; weights: `[batch, items]` attention (0 at padding);
      mask: bool `[batch, items]`; affine: `(kernel [dim, classes], bias [classes])`;
      predicted: int `[batch]`, the decision to flip away from.

    Returns:
      k_min int32 `[batch]` (-1 when no removal flips, including removing everything, which
      leaves the bias alone) and a bool `[batch, items]` mask of one minimum set.
    """
    values = jnp.asarray(values)
    kernel, bias = (jnp.asarray(a, values.dtype) for a in affine)
    if kernel.shape[0] != values.shape[-1] or bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"affine must be (kernel [dim={values.shape[-1]}, classes], bias [classes]); got "
            f"{kernel.shape} and {bias.shape}."
        )
    k, members = _min_flip(
        values,
        jnp.asarray(weights, values.dtype),
        jnp.asarray(mask, bool),
        kernel,
        bias,
        jnp.asarray(predicted, jnp.int32),
    )
    return np.asarray(k), np.asarray(members)
