"""Closed form of the erasures for an affine head (logits = weights @ (values @ W) + b).

Per-item logit contributions z_i = W h_i are computed once; single erasures are exclusive sums
(prefix-before-i plus suffix-after-i) and prefix removals along an ordering are suffix sums, all
by `cumulative_sum` (an associative scan, never `1 - cumsum`). An erasure that removes every item
leaves all-zero weights, i.e. the bias-only output.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from attn_interp.erasure.decisions import decision_differs, predicted_probability
from attn_interp.erasure.primitives import HIGHEST, cumulative_sum, gather_items, map_in_blocks


def item_logits(values: jax.Array, kernel: jax.Array) -> jax.Array:
    """Per-item logit contributions z_i = h_i @ W: values `[batch, items, dim]` -> `[batch, items, classes]`."""
    return jnp.einsum("bnd,dc->bnc", values, kernel, precision=HIGHEST)


def _ratio_plus_bias(num: jax.Array, mass: jax.Array, bias: jax.Array) -> jax.Array:
    """num / mass + bias, with the bias alone where the remaining mass is 0 (all removed)."""
    has = mass > 0
    safe = jnp.where(has, mass, 1.0)
    return jnp.where(has[..., None], num / safe[..., None], 0.0) + bias


def _weighted_items(alpha: jax.Array, z: jax.Array) -> jax.Array:
    """[alpha_i z_i, alpha_i]: `[batch, items, classes + 1]`, the terms every closed-form sum adds
    (the last channel is the attention mass)."""
    return jnp.concatenate([alpha[..., None] * z, alpha[..., None]], axis=-1)


def _split_ratio(sums: jax.Array, bias: jax.Array) -> jax.Array:
    return _ratio_plus_bias(sums[..., :-1], sums[..., -1], bias)


def _single_sums(alpha: jax.Array, z: jax.Array) -> jax.Array:
    """Sums of [alpha_j z_j, alpha_j] over j != i, as prefix-before-i plus suffix-after-i (no
    subtraction). `[batch, items, classes + 1]`."""
    x = _weighted_items(alpha, z)
    return cumulative_sum(x, 1, False, exclusive=True) + cumulative_sum(x, 1, True, exclusive=True)


def closed_form_single_logits(alpha: jax.Array, z: jax.Array, bias: jax.Array) -> jax.Array:
    """Logits after zeroing each item alone and renormalising, for an affine head.

    alpha `[batch, items]` (0 at padding), z `[batch, items, classes]`, bias `[classes]`.
    Returns `[batch, items, classes]`: row i = (sum_{j != i} a_j z_j) / (sum_{j != i} a_j) + b, the
    sums taken as prefix-before-i plus suffix-after-i (no subtraction).
    """
    return _split_ratio(_single_sums(alpha, z), bias)


def closed_form_singles(
    alpha: jax.Array, z: jax.Array, bias: jax.Array, *, unit_mass: bool
) -> tuple[list[jax.Array] | jax.Array, jax.Array]:
    """Every single erasure of an affine head: the erased logits and the change of the logits.

    alpha `[batch, items]` (0 at padding), z `[batch, items, classes]`, bias `[classes]`.
    Returns (logits, change):

    * logits: `closed_form_single_logits` class-major, one `[batch, items]` array per class (up to
      32 classes, for `argmax_rows`), else the `[batch, items, classes]` array;
    * change `[batch, classes, items]`: erased minus original logits, computed directly so that
      divergences keep their precision for the tiny changes of one item among hundreds. With
      zbar_i = sum_{j != i} a_j z_j / sum_{j != i} a_j (0 when nothing remains: the bias alone)
      and M = sum_j a_j: zbar_i - sum_j a_j z_j = a_i (zbar_i - z_i) + (1 - M) zbar_i.
      `unit_mass`: the weights are a softmax, M = 1 exactly (the round-off term is dropped).
    """
    zbar = _class_means(jnp.swapaxes(_single_sums(alpha, z), 1, 2))  # [B, C, n]
    change = alpha[:, None, :] * (zbar - jnp.swapaxes(z, 1, 2))
    if not unit_mass:
        change = change + (1.0 - jnp.sum(alpha, axis=1))[:, None, None] * zbar
    return _rows_plus_bias(zbar, bias), change


def closed_form_curves(
    alpha: jax.Array, z: jax.Array, bias: jax.Array, orders: jax.Array, *, kept: bool = True
) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """Logits along removal orderings for an affine head, as full `[batch, R, items, classes]` curves.

    alpha `[batch, items]`, z `[batch, items, classes]`, bias `[classes]`, orders `[batch, R, items]`
    (valid positions first). Entry k-1 (k = 1..items) of the removed curve is the output after
    removing the first k items of the ordering (suffix sums; at k = n only the bias is left); of the
    kept curve, after keeping only the first k items (prefix sums). Returns (removed logits, kept
    logits or None when `kept=False`, removed original attention mass after k removals
    `[batch, R, items]`). `closed_form_removal` gives the suite's summaries without materialising
    these curves.
    """
    x = gather_items(_weighted_items(alpha, z), orders)
    removed = _split_ratio(cumulative_sum(x, 2, True, exclusive=True), bias)
    if kept:
        fwd = cumulative_sum(x, 2, False)
        return removed, _split_ratio(fwd, bias), fwd[..., -1]
    return removed, None, cumulative_sum(x[..., -1], 2, False)


_UNROLL_CLASSES = 32


def _inverse_mass(mass: jax.Array) -> jax.Array:
    """1 / remaining mass, and 0 where nothing remains (the logits are then the bias alone)."""
    has = mass > 0
    return jnp.where(has, 1.0 / jnp.where(has, mass, 1.0), 0.0)


def _class_means(sums: jax.Array) -> jax.Array:
    """Class-major sums `[..., classes + 1, items]` (last row: remaining mass) -> the renormalised
    means `[..., classes, items]`."""
    return sums[..., :-1, :] * _inverse_mass(sums[..., -1:, :])


def _rows_plus_bias(means: jax.Array, bias: jax.Array) -> list[jax.Array] | jax.Array:
    """Logits from class-major means `[..., classes, items]`: one `[..., items]` array per class
    when there are few classes (elementwise work that XLA vectorises along items), else one
    `[..., items, classes]` array."""
    num_classes = means.shape[-2]
    if num_classes <= _UNROLL_CLASSES:
        return [means[..., c, :] + bias[c] for c in range(num_classes)]
    return jnp.swapaxes(means, -1, -2) + bias


def _class_rows(sums: jax.Array, bias: jax.Array) -> list[jax.Array] | jax.Array:
    """`_rows_plus_bias(_class_means(sums), bias)`, each row scaled separately: on the prefix
    removals' 4-d sums this fuses better (0.3-0.4 ms less at 64 x 256 on CPU than the means
    array first)."""
    inv = _inverse_mass(sums[..., -1, :])
    num_classes = sums.shape[-2] - 1
    if num_classes <= _UNROLL_CLASSES:
        return [sums[..., c, :] * inv + bias[c] for c in range(num_classes)]
    return jnp.swapaxes(sums[..., :-1, :], -1, -2) * inv[..., None] + bias


def _differs_and_p(rows, predicted: jax.Array, probabilities: bool):
    """From `_class_rows` output and predicted `[...]` (broadcastable to the rows): decision
    differs from predicted (first index wins ties, like argmax) and, optionally, p_predicted."""
    if not isinstance(rows, list):
        p = predicted_probability(rows, predicted) if probabilities else None
        return decision_differs(rows, predicted), p
    y = predicted
    l_y = sum(jnp.where(y == c, row, 0.0) for c, row in enumerate(rows))
    differs = jnp.zeros(l_y.shape, bool)
    for c, row in enumerate(rows):
        differs = differs | ((y != c) & jnp.where(c < y, row >= l_y, row > l_y))
    p = None
    if probabilities:  # p_y = 1 / sum_c exp(l_c - l_y); the c = y term is 1, so no 0/0
        p = 1.0 / sum(jnp.exp(row - l_y) for row in rows)
    return differs, p


# Target size of one block's gathered sums in `closed_form_removal`: the scans' temporaries of a
# block then stay in cache. On the 2-core CPU (32 MB L3 shared with other machines): 2x faster
# with both AOPC curves than one block; first flips alone 2x faster at 64 x 512 and 32 x 1024
# (no change at 64 x 256); 0.75-3 MB alike, 6 MB and more clearly slower.
REMOVAL_BLOCK_BYTES = 3 << 20


def closed_form_removal(
    alpha: jax.Array,
    z: jax.Array,
    bias: jax.Array,
    orders: jax.Array,
    predicted: jax.Array,
    length: jax.Array,
    *,
    kept: bool = False,
    probabilities: bool = False,
) -> dict[str, jax.Array]:
    """Prefix-removal summaries along orderings for an affine head (the suite's fast path).

    Same quantities as `closed_form_curves` followed by `first_flip`, without materialising the
    logit curves: sums scanned items-major, decisions class-major (`[batch, R, classes + 1, items]`,
    items contiguous), block by block of documents on CPU (`jax.lax.map`, about
    `REMOVAL_BLOCK_BYTES` of sums per block).
    alpha `[batch, items]`, z `[batch, items, classes]`, bias `[classes]`, orders `[batch, R, items]`,
    predicted int `[batch]`, length `[batch]`. Returns a dict with
    "k" `[batch, R]` int32 (first flip, -1 never) and, with `probabilities`, "p_removed"
    `[batch, R, items]` (p_predicted after removing the first k items) and with `kept` also
    "p_kept" (after keeping only the first k items). The attention mass removed at the first
    flip is `removed_mass_at(alpha, orders, k)`.
    """
    _, num_r, n = orders.shape
    per_doc = num_r * (z.shape[-1] + 1) * n * jnp.dtype(z.dtype).itemsize
    run = functools.partial(
        _closed_form_removal_block, bias=bias, kept=kept, probabilities=probabilities
    )
    return map_in_blocks(run, (alpha, z, orders, predicted, length), per_doc, REMOVAL_BLOCK_BYTES)


def _closed_form_removal_block(
    alpha: jax.Array,
    z: jax.Array,
    orders: jax.Array,
    predicted: jax.Array,
    length: jax.Array,
    *,
    bias: jax.Array,
    kept: bool,
    probabilities: bool,
) -> dict[str, jax.Array]:
    """`closed_form_removal` on one block of documents (all arrays hold the same rows)."""
    x = _weighted_items(alpha, z)
    b, num_r, n = orders.shape
    y = predicted[:, None, None]

    def scan_along(order_rows: jax.Array, exclusive: bool) -> jax.Array:
        # Gathered items-major `[B, n, R * (C + 1)]`, scanned along items (a major axis: the
        # scan's slices are contiguous rows, about 2x faster on CPU than scanning the minor axis
        # of a class-major array), then class-major `[B, R, C + 1, n]` for the decisions.
        rows = gather_items(x, jnp.swapaxes(order_rows, 1, 2)).reshape(b, n, -1)
        sums = cumulative_sum(rows, 1, False, exclusive=exclusive).reshape(b, n, num_r, -1)
        return jnp.transpose(sums, (0, 2, 3, 1))

    # Items in reverse ordering, so that a forward scan (cheaper than a reverse one) gives the
    # suffix sums: after[..., i] = sum of the last i items = what is left after removing the
    # first k = n - i.
    after = scan_along(jnp.flip(orders, -1), exclusive=True)
    differs, p_after = _differs_and_p(_class_rows(after, bias), y, probabilities)
    i_all = jnp.arange(n, dtype=jnp.int32)
    valid = i_all >= n - length[:, None, None]  # k = n - i <= length
    last = jnp.max(jnp.where(differs & valid, i_all, -1), axis=-1)  # the smallest k that flips
    out = {"k": jnp.where(last >= 0, n - last, -1).astype(jnp.int32)}
    if probabilities:
        out["p_removed"] = jnp.flip(p_after, -1)  # index k - 1
    if kept and probabilities:
        fwd = scan_along(orders, exclusive=False)
        out["p_kept"] = _differs_and_p(_class_rows(fwd, bias), y, True)[1]
    return out


def removed_mass_at(alpha: jax.Array, orders: jax.Array, k: jax.Array) -> jax.Array:
    """Original attention mass of the first k items of each ordering (one masked sum, no scan).

    alpha `[batch, items]`, orders `[batch, R, items]`, k int `[batch, R]` (k <= 0 gives 0).
    Returns `[batch, R]`; equals entry k - 1 of `closed_form_curves`' mass (a prefix sum) up to
    summation order.
    """
    first_k = jnp.arange(orders.shape[-1], dtype=jnp.int32) < k[..., None]
    return jnp.sum(jnp.where(first_k, gather_items(alpha, orders), 0.0), axis=-1)
