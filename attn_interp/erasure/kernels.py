"""Array kernels of the erasure engine: erased-output logits, gradients, orderings.

Two ways to get the classifier output after erasing a set of attention items:

* the **mask path** (any head): explicit keep-masks, renormalised weights, one `vmap`ped head call;
* the **closed form** (affine head): per-item logit contributions
  z_i = W h_i once, then exclusive sums (single erasures) and suffix sums along an ordering
  (prefix removals), computed with `jax.lax.associative_scan` (never `1 - cumsum`).

An erasure that removes every item gives all-zero weights, i.e. the bias-only output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Head = Callable[[jax.Array, jax.Array], jax.Array]
# Full float32 products on every platform: TF32 on GPUs would decide near-ties differently.
HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------------------------
# Basics.


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax of `scores [batch, items]` over the True positions of `mask`; exactly 0 elsewhere.

    A row without any valid item gives all zeros (not NaN).
    """
    neg = jnp.where(mask, scores, -jnp.inf)
    top = jnp.max(neg, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e = jnp.exp(neg - top)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


def _scan(x: jax.Array, axis: int, reverse: bool, exclusive: bool = False) -> jax.Array:
    """Cumulative sum along `axis`: forward y[i] = sum_{j <= i} x[j], or reverse
    y[i] = sum_{j >= i} x[j]; `exclusive` leaves out x[i] itself (strict inequalities).

    An associative scan: only additions of the original terms (never a difference of sums), and
    elementwise operations only, so a row's result does not depend on how many rows are batched
    with it. (A blocked scan by triangular matrix products is about twice as fast on CPU, but
    XLA:CPU picks different dot kernels for different batch sizes, which changes the rounding.)
    """
    axis = axis % x.ndim
    y = jax.lax.associative_scan(jnp.add, x, axis=axis, reverse=reverse)
    if not exclusive:
        return y
    # Shift the inclusive sums by one item (a pad and a slice that fuse into the consumer).
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, 1) if reverse else (1, 0)
    start = 1 if reverse else 0
    return jax.lax.slice_in_dim(jnp.pad(y, pad), start, start + n, axis=axis)


def _ratio_plus_bias(num: jax.Array, mass: jax.Array, bias: jax.Array) -> jax.Array:
    """num / mass + bias, with the bias alone where the remaining mass is 0 (all removed)."""
    has = mass > 0
    safe = jnp.where(has, mass, 1.0)
    return jnp.where(has[..., None], num / safe[..., None], 0.0) + bias


def gather_items(x: jax.Array, index: jax.Array) -> jax.Array:
    """x `[batch, items, ...]`, index `[batch, ...k]` -> `[batch, ...k, ...]` (per-row gather)."""
    return jax.vmap(lambda row, idx: row[idx])(x, index)


def item_logits(values: jax.Array, kernel: jax.Array) -> jax.Array:
    """Per-item logit contributions z_i = h_i @ W: values `[batch, items, dim]` -> `[batch, items, classes]`."""
    return jnp.einsum("bnd,dc->bnc", values, kernel, precision=HIGHEST)


# ---------------------------------------------------------------------------------------------
# Closed form (affine head).


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
    return _scan(x, 1, False, exclusive=True) + _scan(x, 1, True, exclusive=True)


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


def argmax_rows(rows: list[jax.Array]) -> jax.Array:
    """`argmax` over classes given one array per class (first index wins ties; finite values).

    rows: per-class arrays of one shape `[...]`. Returns int32 `[...]`.
    """
    best, index = rows[0], jnp.zeros(rows[0].shape, jnp.int32)
    for c, row in enumerate(rows[1:], start=1):
        take = row > best
        best, index = jnp.where(take, row, best), jnp.where(take, c, index)
    return index


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
    removed = _split_ratio(_scan(x, 2, True, exclusive=True), bias)
    if kept:
        fwd = _scan(x, 2, False)
        return removed, _split_ratio(fwd, bias), fwd[..., -1]
    return removed, None, _scan(x[..., -1], 2, False)


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


def _docs_per_block(batch: int, bytes_per_doc: int, cpu_block_bytes: int) -> int:
    """Documents per `jax.lax.map` block: cache-sized blocks on CPU; one block on accelerators,
    whose memory bandwidth does not need the blocking and where a loop of small blocks would
    leave the device idle."""
    if jax.default_backend() != "cpu":
        return batch
    most = max(1, min(batch, cpu_block_bytes // max(bytes_per_doc, 1)))
    blocks = -(-batch // most)
    return -(-batch // blocks)  # blocks of equal size (no small remainder block)


def _map_in_blocks(
    fn: Callable, operands: tuple[jax.Array, ...], bytes_per_doc: int, cpu_block_bytes: int
):
    """`fn(*operands)` (each operand `[batch, ...]`, results a pytree of `[batch, ...]` arrays)
    block by block of documents (`_docs_per_block`): one call when one block holds the batch,
    else `jax.lax.map` over single documents, vectorised within each block. Every document's
    result is the same either way (`fn` treats documents independently)."""
    batch = operands[0].shape[0]
    g = _docs_per_block(batch, bytes_per_doc, cpu_block_bytes)
    if g >= batch:
        return fn(*operands)

    def one(xs):
        return jax.tree.map(lambda v: v[0], fn(*(x[None] for x in xs)))

    return jax.lax.map(one, operands, batch_size=g)


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
    return _map_in_blocks(run, (alpha, z, orders, predicted, length), per_doc, REMOVAL_BLOCK_BYTES)


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
        sums = _scan(rows, 1, False, exclusive=exclusive).reshape(b, n, num_r, -1)
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


# ---------------------------------------------------------------------------------------------
# Mask path (any head).


def renormalise(weights: jax.Array, keep: jax.Array) -> jax.Array:
    """Zero the weights where `keep` is False and L1-renormalise over the last axis (exact, no floor).

    All removed -> all zeros (the head then sees only its bias).
    """
    w = jnp.where(keep, weights, 0.0)
    total = jnp.sum(w, axis=-1, keepdims=True)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0)


def masked_head_logits(
    head: Head, values: jax.Array, alpha: jax.Array, keep: jax.Array
) -> jax.Array:
    """Run `head` once per explicit keep-mask, vectorised with `vmap`.

    values `[batch, items, dim]`, alpha `[batch, items]`, keep bool `[batch, masks, items]`.
    Returns `[batch, masks, classes]`.
    """
    w = renormalise(alpha[:, None, :], keep)
    return jax.vmap(head, in_axes=(None, 1), out_axes=1)(values, w)


# Target size of one block's renormalised weights in `blocked_masked_head_logits`: small enough
# to stay in cache between building the weights and the head's matrix products.
MASK_BLOCK_BYTES = 6 << 20


def blocked_masked_head_logits(
    head: Head,
    values: jax.Array,
    alpha: jax.Array,
    keep_fn: Callable[..., jax.Array],
    operands: tuple[jax.Array, ...],
    masks_per_doc: int,
) -> jax.Array:
    """`masked_head_logits` for keep-masks built block by block of documents.

    values `[batch, items, dim]`, alpha `[batch, items]`; `keep_fn(*ops)` maps one block of
    `operands` (each `[g, ...]`) to bool keep-masks `[g, masks_per_doc, items]`. Documents go
    through `jax.lax.map` in blocks of g, on CPU chosen so that a block's renormalised weights take
    about `MASK_BLOCK_BYTES`: built and consumed while in cache instead of materialising
    `[batch, masks, items]` (about 1.8x faster on CPU for 256 items); on accelerators one block.
    Returns
    `[batch, masks_per_doc, classes]`, equal to one `masked_head_logits` call on all masks.
    """
    per_doc = masks_per_doc * alpha.shape[1] * jnp.dtype(alpha.dtype).itemsize

    def block(v, a, *ops):
        return masked_head_logits(head, v, a, keep_fn(*ops))

    return _map_in_blocks(block, (values, alpha, *operands), per_doc, MASK_BLOCK_BYTES)


def single_keep_masks(mask: jax.Array) -> jax.Array:
    """`[batch, items]` -> `[batch, items, items]`: mask i keeps every valid item except item i."""
    n = mask.shape[-1]
    return mask[:, None, :] & ~jnp.eye(n, dtype=bool)[None]


def ranks_of(orders: jax.Array) -> jax.Array:
    """Inverse permutations: rank[..., i] = position of item i in the ordering. `[..., items]`."""
    n = orders.shape[-1]
    positions = jnp.broadcast_to(jnp.arange(n, dtype=orders.dtype), orders.shape)
    return jnp.put_along_axis(jnp.zeros_like(orders), orders, positions, axis=-1, inplace=False)


def prefix_keep_masks(orders: jax.Array, mask: jax.Array, *, keep_top: bool) -> jax.Array:
    """Keep-masks `[batch, R, items(k), items]` for k = 1..items along each ordering.

    keep_top=False: remove the first k items; keep_top=True: keep only the first k items.
    """
    n = orders.shape[-1]
    rank = ranks_of(orders)[:, :, None, :]  # [B, R, 1, n]
    k = jnp.arange(1, n + 1)[None, None, :, None]
    keep = rank < k if keep_top else rank >= k
    return keep & mask[:, None, None, :]


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


# ---------------------------------------------------------------------------------------------
# Orderings and random draws.


def _host_sort(x) -> np.ndarray:
    return np.sort(np.asarray(x), axis=-1)


def _host_stable_argsort(key) -> np.ndarray:
    # Key in the high half, position in the low half of one int64: a plain (SIMD) value sort of
    # the packed numbers is exactly a stable argsort of the keys.
    # In-place ufuncs: numpy's elision of temporaries walks the C stack for large arrays, which
    # costs about 1 ms per operation once jaxlib's many shared objects are loaded.
    packed = np.asarray(key).astype(np.int64)
    np.left_shift(packed, 32, out=packed)
    np.bitwise_or(packed, np.arange(packed.shape[-1], dtype=np.int64), out=packed)
    packed.sort(axis=-1)
    np.bitwise_and(packed, 0xFFFFFFFF, out=packed)
    return packed.astype(np.int32)


def _on_cpu_host(fn, x: jax.Array) -> jax.Array:
    shape = jax.ShapeDtypeStruct(x.shape, jnp.int32)
    return jax.pure_callback(fn, shape, x, vmap_method="expand_dims")


def lax_sort_last_axis(x: jax.Array) -> jax.Array:
    """`sort_last_axis` by `jax.lax.sort` (the path of non-CPU platforms)."""
    return jax.lax.sort(x, dimension=x.ndim - 1)


def lax_stable_argsort(key: jax.Array) -> jax.Array:
    """`stable_argsort` by a two-operand `jax.lax.sort` of (key, position) (non-CPU platforms)."""
    pos = jax.lax.broadcasted_iota(jnp.int32, key.shape, key.ndim - 1)
    return jax.lax.sort((key, pos), dimension=key.ndim - 1, num_keys=1, is_stable=True)[1]


def sort_last_axis(x: jax.Array, *, host_sorts: bool = True) -> jax.Array:
    """Ascending sort of int32 `x [..., items]` along its last axis.

    With `host_sorts` on CPU the rows go to numpy's vectorised sort through `jax.pure_callback`
    (XLA:CPU's sort is much slower for rows of hundreds of items, see
    `experiments/benchmark_erasure.py`); other platforms, and `host_sorts=False`, use
    `jax.lax.sort`. Both give the same (unique) result. `host_sorts` is fixed at trace time, so
    jitted callers take it as a static argument.

    `host_sorts=False` is for code run per device under `jax.shard_map` on several CPU devices:
    each device would block one thread of XLA:CPU's shared pool inside its callback while the
    callback's own input transfer waits for a free thread of that pool (a deadlock when
    devices >= threads).
    """
    if not host_sorts:
        return lax_sort_last_axis(x)
    return jax.lax.platform_dependent(
        x, cpu=lambda v: _on_cpu_host(_host_sort, v), default=lax_sort_last_axis
    )


def stable_argsort(key: jax.Array, *, host_sorts: bool = True) -> jax.Array:
    """Positions of an ascending stable sort of int32 `key [..., items]` (ties by position).

    With `host_sorts` on CPU: numpy through `jax.pure_callback` (see `sort_last_axis`); elsewhere
    `lax_stable_argsort`. Returns int32 `[..., items]`.
    """
    if not host_sorts:
        return lax_stable_argsort(key)
    return jax.lax.platform_dependent(
        key, cpu=lambda v: _on_cpu_host(_host_stable_argsort, v), default=lax_stable_argsort
    )


def _float_key(x: jax.Array) -> jax.Array:
    """Order-preserving map of float32 to int32 (an involution on the bit patterns)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def _sort_descending_values(x: jax.Array, host_sorts: bool) -> jax.Array:
    """Values of `x [..., items]` sorted descending along the last axis.

    Float32 goes through an int32 sort of order-preserving keys (`sort_last_axis`: exact, and much
    faster than a float sort on CPU); float64 uses `jnp.sort`.
    """
    if jnp.dtype(x.dtype).itemsize > 4:
        return -jnp.sort(-x, axis=-1)
    key = sort_last_axis(_float_key(-x), host_sorts=host_sorts)
    return -jax.lax.bitcast_convert_type(_float_key_inverse(key), jnp.float32).astype(x.dtype)


def _float_key_inverse(key: jax.Array) -> jax.Array:
    return jnp.where(key < 0, key ^ jnp.int32(0x7FFFFFFF), key)


def descending_keys(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Sort keys whose stable ascending order is the descending order of `scores [..., items]`
    (ties by position, padding last): order-preserving int32 keys for float32 (and narrower)
    scores, float64 keys for float64 scores. Sort them with `ascending_order`."""
    key = jnp.where(mask, -scores, jnp.inf)
    key = jnp.where(key == 0, 0.0, key).astype(key.dtype)  # -0.0 ties with +0.0
    if jnp.dtype(key.dtype).itemsize > 4:
        return key
    # Order-preserving map of IEEE floats to signed ints: flip the magnitude bits of negatives.
    return _float_key(key)


def ascending_order(key: jax.Array, *, host_sorts: bool = True) -> jax.Array:
    """Stable ascending argsort of int32 or float64 keys `[..., items]` -> int32 positions
    (`stable_argsort` for int32 keys; `jnp.argsort(stable=True)` for float keys)."""
    if jnp.issubdtype(key.dtype, jnp.integer):
        return stable_argsort(key.astype(jnp.int32), host_sorts=host_sorts)
    return jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)


def descending_order(scores: jax.Array, mask: jax.Array, *, host_sorts: bool = True) -> jax.Array:
    """Stable descending argsort of `scores [..., items]`: ties keep position order, padding last.

    Returns int32 positions. Float32 (and narrower) scores are mapped to order-preserving int32 keys
    and go through `stable_argsort`; float64 scores use `jnp.argsort(stable=True)`.
    """
    return ascending_order(descending_keys(scores, mask), host_sorts=host_sorts)


def document_keys(seed: int | jax.Array, doc_ids: jax.Array) -> jax.Array:
    """One key per document, `fold_in(key(seed), doc_id)`: independent of batching. `[batch]`."""
    base = jax.random.key(seed)
    return jax.vmap(lambda d: jax.random.fold_in(base, d))(doc_ids.astype(jnp.uint32))


def _document_streams(doc_ids: jax.Array, seed: int) -> tuple[jax.Array, jax.Array]:
    """Two independent keys per document: (orderings, comparison items), each `[batch]`."""
    split = jax.vmap(jax.random.split)(document_keys(seed, doc_ids))
    return split[:, 0], split[:, 1]


_PADDING_KEY = np.iinfo(np.int32).max


def random_sort_keys(mask: jax.Array, doc_ids: jax.Array, seed: int, num: int) -> jax.Array:
    """int32 keys `[batch, num, items]` whose stable ascending order is a uniform random ordering
    of each document's valid positions, padding last (see `ascending_order`).

    One `jax.random.bits` call per document key, item-major (draw `j * num + row` is the key of
    (row, the j-th valid item)), so a key does not depend on the padded width nor on where the
    padding sits: results are identical however documents are batched or padded, and a document
    whose valid positions are not a prefix gets the ordering of its compacted copy. (Drawn flat and
    reshaped: a `[items, num]` draw is about 2x slower on CPU when num is not a power of two.) Valid
    keys are 31 random bits with the sign bit set (all negative), padding is the largest int32.
    mask `[batch, items]`, doc_ids int `[batch]`.
    """
    keys, _ = _document_streams(doc_ids, seed)
    n = mask.shape[-1]
    bits = jax.vmap(lambda k: jax.random.bits(k, (n * num,), jnp.uint32).reshape(n, num).T)(keys)
    rank = jnp.broadcast_to(valid_ranks(mask)[:, None, :], bits.shape)
    bits = jnp.take_along_axis(bits, jnp.maximum(rank, 0), axis=2)
    valid = jax.lax.bitcast_convert_type((bits >> 1) | jnp.uint32(0x80000000), jnp.int32)
    return jnp.where(mask[:, None, :], valid, jnp.int32(_PADDING_KEY))


def valid_ranks(mask: jax.Array) -> jax.Array:
    """int32 `[batch, items]`: the rank of each valid position among the valid positions of its
    row (0, 1, ...; the position itself when the valid positions are a prefix), -1 at padding."""
    return jnp.where(mask, jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1, -1)


def random_orderings(
    mask: jax.Array, doc_ids: jax.Array, seed: int, num: int, *, host_sorts: bool = True
) -> jax.Array:
    """`num` uniform random orderings of each document's valid positions (padding last): the
    sorted `random_sort_keys`. mask `[batch, items]`, doc_ids int `[batch]`. Returns int32
    `[batch, num, items]`."""
    return ascending_order(random_sort_keys(mask, doc_ids, seed, num), host_sorts=host_sorts)


def comparison_uniforms(doc_ids: jax.Array, seed: int, num: int) -> jax.Array:
    """Uniform [0, 1) draws `[batch, num]` for the random comparison items (`random_other_items`),
    from a stream of each document's key independent of `random_sort_keys`."""
    _, keys = _document_streams(doc_ids, seed)
    return jax.vmap(lambda k: jax.random.uniform(k, (num,)))(keys)


def random_other_items(
    uniforms: jax.Array, mask: jax.Array, tops: jax.Array, mode: str
) -> jax.Array:
    """Random comparison items r from uniforms `[batch, T]`, one per (document, target).

    mask bool `[batch, items]`, tops int `[batch, T]` (the compared top items, valid positions).
    mode "paper": r uniform over the valid positions != top; "code_compatible": r uniform over the
    valid positions but the first, independent of top (quirk Q1: positions 1..n-1 of a prefix).
    Drawn as a rank among the valid positions, so padding anywhere is never drawn. Returns int32
    positions `[batch, T]`, -1 where n < 2.
    """
    length = jnp.sum(mask, axis=-1)
    m = jnp.maximum(length - 1, 1)[:, None]
    u = jnp.clip(jnp.floor(uniforms * m).astype(jnp.int32), 0, m - 1)
    rank = valid_ranks(mask)
    if mode == "paper":
        r_rank = u + (u >= jnp.take_along_axis(rank, tops, axis=1)).astype(jnp.int32)
    else:
        r_rank = u + 1
    r = jnp.argmax(rank[:, None, :] == r_rank[..., None], axis=-1)
    return jnp.where(length[:, None] >= 2, r, -1).astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Decisions along curves.


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


# ---------------------------------------------------------------------------------------------
# Exact minimum flip set.


def _flip_terms(z, alpha, mask, bias, predicted):
    """t_j = a_j (m_j + beta) per competing class: `[batch, items, classes]`, 0 at padding."""
    z_y = jnp.take_along_axis(z, predicted[:, None, None], axis=2)  # [B, n, 1]
    beta = bias[predicted][:, None] - bias[None, :]  # [B, C]
    t = alpha[..., None] * (z_y - z + beta[:, None, :])
    return jnp.where(mask[..., None], t, 0.0)


def _greedy_flip_counts(t, alpha, mask, predicted, host_sorts: bool):
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
    t_sorted = _sort_descending_values(jnp.where(valid, t_cls, -jnp.inf), host_sorts)
    t_sorted = jnp.where(jnp.isfinite(t_sorted), t_sorted, 0.0)
    rest = _scan(t_sorted, 2, True, exclusive=True)  # survivors' sum after k = 1..n removals
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


def _member_order(t_best, alpha, mask, host_sorts: bool):
    """Removal order of the best class's minimum set: t descending, and among t = 0 the
    weightless items first (a tie needs a weighted survivor). `[batch, items]`."""
    if jnp.dtype(t_best.dtype).itemsize > 4:
        key = descending_keys(t_best, mask)
        weighted = (mask & (alpha > 0)).astype(jnp.int32)
        return jnp.lexsort((weighted, key), axis=-1).astype(jnp.int32)
    # int32 keys: t = 0 maps to 0 and the smallest positive t to -2; -1 (-0.0) is unused.
    key = descending_keys(t_best, mask)
    key = jnp.where(mask & (t_best == 0) & (alpha <= 0), -1, key)
    return ascending_order(key, host_sorts=host_sorts)


def minimum_flip_set_from_z(
    z: jax.Array,
    alpha: jax.Array,
    mask: jax.Array,
    bias: jax.Array,
    predicted: jax.Array,
    *,
    host_sorts: bool = True,
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
    k_c = _greedy_flip_counts(t, alpha, mask, predicted, host_sorts)
    best_class = jnp.argmin(k_c, axis=1)
    k_best = jnp.min(k_c, axis=1)
    weighted = mask & (alpha > 0)
    k_bias = jnp.sum(weighted, axis=-1).astype(jnp.int32)
    bias_flips = (jnp.argmax(bias) != predicted) & (k_bias >= 1) & (k_bias < k_best)
    found = (k_best <= n) & ~bias_flips
    k_min = jnp.where(found, k_best, jnp.where(bias_flips, k_bias, -1)).astype(jnp.int32)
    t_best = jnp.take_along_axis(t, best_class[:, None, None], axis=2)[..., 0]  # [B, n]
    rank = ranks_of(_member_order(t_best, alpha, mask, host_sorts))
    members = jnp.where(found[:, None], rank < k_best[:, None], bias_flips[:, None] & weighted)
    return k_min, members & mask
