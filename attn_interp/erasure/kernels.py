"""Array kernels of the erasure engine: erased-output logits, gradients, orderings.

Two ways to get the classifier output after erasing a set of attention items:

* the **mask path** (any head): explicit keep-masks, renormalised weights, one `vmap`ped head call;
* the **closed form** (affine head, paper.md section 11): per-item logit contributions
  z_i = W h_i once, then exclusive sums (single erasures) and suffix sums along an ordering
  (prefix removals), computed with `jax.lax.associative_scan` (never `1 - cumsum`).

An erasure that removes every item gives all-zero weights, i.e. the bias-only output.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Head = Callable[[jax.Array, jax.Array], jax.Array]


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


def _scan(x: jax.Array, axis: int, reverse: bool) -> jax.Array:
    """Inclusive cumulative sum along `axis` (forward or reverse) by associative scan."""
    return jax.lax.associative_scan(jnp.add, x, axis=axis, reverse=reverse)


def _shift(x: jax.Array, axis: int, by: int) -> jax.Array:
    """Shift along `axis` filling with zeros: by=+1 gives y[i] = x[i-1]; by=-1 gives y[i] = x[i+1]."""
    axis = axis % x.ndim
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    if by > 0:
        pad[axis] = (1, 0)
        return jax.lax.slice_in_dim(jnp.pad(x, pad), 0, n, axis=axis)
    pad[axis] = (0, 1)
    return jax.lax.slice_in_dim(jnp.pad(x, pad), 1, n + 1, axis=axis)


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
    return jnp.einsum("bnd,dc->bnc", values, kernel)


# ---------------------------------------------------------------------------------------------
# Closed form (affine head).


def _closed_sums(alpha: jax.Array, z: jax.Array, orders: jax.Array | None):
    """Forward and reverse inclusive scans of [alpha * z, alpha] (the last channel is the mass).

    Without `orders`: `[batch, items, classes + 1]` in position order; with orders `[batch, R, items]`:
    `[batch, R, items, classes + 1]` along each ordering.
    """
    x = jnp.concatenate([alpha[..., None] * z, alpha[..., None]], axis=-1)
    if orders is not None:
        x = gather_items(x, orders)
    axis = x.ndim - 2
    return _scan(x, axis, False), _scan(x, axis, True)


def _split_ratio(sums: jax.Array, bias: jax.Array) -> jax.Array:
    return _ratio_plus_bias(sums[..., :-1], sums[..., -1], bias)


def closed_form_single_logits(alpha: jax.Array, z: jax.Array, bias: jax.Array) -> jax.Array:
    """Logits after zeroing each item alone and renormalising, for an affine head.

    alpha `[batch, items]` (0 at padding), z `[batch, items, classes]`, bias `[classes]`.
    Returns `[batch, items, classes]`: row i = (sum_{j != i} a_j z_j) / (sum_{j != i} a_j) + b, the
    sums taken as prefix-before-i plus suffix-after-i (no subtraction).
    """
    fwd, bwd = _closed_sums(alpha, z, None)
    return _split_ratio(_shift(fwd, 1, 1) + _shift(bwd, 1, -1), bias)


def closed_form_prefix_logits(
    alpha: jax.Array, z: jax.Array, bias: jax.Array, orders: jax.Array, *, keep_top: bool
) -> jax.Array:
    """Logits along removal orderings, for an affine head.

    alpha `[batch, items]`, z `[batch, items, classes]`, bias `[classes]`, orders `[batch, R, items]`
    (valid positions first). Returns `[batch, R, items, classes]` where entry k-1 (k = 1..items) is
    the output after removing the first k items of the ordering (`keep_top=False`: suffix sums; at
    k = n only the bias is left), or after keeping only the first k items (`keep_top=True`: prefix
    sums).
    """
    removed, kept, _ = closed_form_curves(alpha, z, bias, orders)
    return kept if keep_top else removed


def closed_form_curves(
    alpha: jax.Array, z: jax.Array, bias: jax.Array, orders: jax.Array, *, kept: bool = True
) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """Both curves of `closed_form_prefix_logits` plus the removed mass, from one pair of scans.

    Returns (removed logits, kept logits `[batch, R, items, classes]` or None when `kept=False`,
    removed original attention mass after k removals `[batch, R, items]`, a direct prefix sum).
    """
    if kept:
        fwd, bwd = _closed_sums(alpha, z, orders)
        return _split_ratio(_shift(bwd, 2, -1), bias), _split_ratio(fwd, bias), fwd[..., -1]
    x = gather_items(jnp.concatenate([alpha[..., None] * z, alpha[..., None]], axis=-1), orders)
    removed = _split_ratio(_shift(_scan(x, 2, True), 2, -1), bias)
    return removed, None, _scan(x[..., -1], 2, False)


def removed_mass(alpha: jax.Array, orders: jax.Array) -> jax.Array:
    """Original attention mass of the first k items of each ordering, k = 1..items (a prefix sum).

    alpha `[batch, items]`, orders `[batch, R, items]` -> `[batch, R, items]`.
    """
    return _scan(gather_items(alpha, orders), 2, False)


def affine_attention_gradient(
    z: jax.Array, weights: jax.Array, mask: jax.Array, bias: jax.Array, predicted: jax.Array
) -> jax.Array:
    """Closed-form g_i = d p_yhat / d weights_i = p_yhat (z_{i,yhat} - sum_c p_c z_{i,c}) (paper.md 6.3).

    z `[batch, items, classes]`, weights `[batch, items]` (free inputs, no renormalisation),
    mask `[batch, items]`, bias `[classes]`, predicted int `[batch]`. Returns `[batch, items]`, 0 at
    padding.
    """
    logits = jnp.einsum("bn,bnc->bc", weights, z) + bias
    p = jax.nn.softmax(logits, axis=-1)
    p_y = jnp.take_along_axis(p, predicted[:, None], axis=1)  # [B, 1]
    z_y = jnp.take_along_axis(z, predicted[:, None, None], axis=2)[..., 0]  # [B, n]
    g = p_y * (z_y - jnp.einsum("bnc,bc->bn", z, p))
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
    """d p_yhat / d weights by `jax.grad`, weights as free inputs (no renormalisation inside).

    values `[batch, items, dim]`, weights `[batch, items]`, predicted int `[batch]`.
    Returns `[batch, items]`, 0 at padding.
    """

    def total_prob(w):
        p = jax.nn.softmax(head(values, w), axis=-1)
        return jnp.sum(jnp.take_along_axis(p, predicted[:, None], axis=1))

    return jnp.where(mask, jax.grad(total_prob)(weights), 0.0)


# ---------------------------------------------------------------------------------------------
# Orderings and random draws.


@jax.jit
def _sort_packed(key: jax.Array) -> jax.Array:
    """Positions of an ascending sort of int32 `key [..., items]`, ties by position (needs x64).

    Key and position are packed into one int64 (key in the high half) so that XLA's fast
    single-operand integer sort gives exactly a stable argsort (float or multi-operand sorts are
    ~10x slower on CPU).
    """
    pos = jnp.arange(key.shape[-1], dtype=jnp.int64)
    packed = jax.lax.shift_left(key.astype(jnp.int64), jnp.int64(32)) | pos
    ordered = jax.lax.sort(packed, dimension=key.ndim - 1, is_stable=False)
    return (ordered & jnp.int64(0xFFFFFFFF)).astype(jnp.int32)


def _float_key(x: jax.Array) -> jax.Array:
    """Order-preserving map of float32 to int32 (an involution on the bit patterns)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def _sort_descending_values(x: jax.Array) -> jax.Array:
    """Values of `x [..., items]` sorted descending along the last axis.

    Float32 goes through a single-operand int32 sort of order-preserving keys (exact, and much
    faster than a float sort on CPU); float64 uses `jnp.sort`.
    """
    if jnp.dtype(x.dtype).itemsize > 4:
        return -jnp.sort(-x, axis=-1)
    key = jax.lax.sort(_float_key(-x), dimension=x.ndim - 1)
    return -jax.lax.bitcast_convert_type(_float_key_inverse(key), jnp.float32).astype(x.dtype)


def _float_key_inverse(key: jax.Array) -> jax.Array:
    return jnp.where(key < 0, key ^ jnp.int32(0x7FFFFFFF), key)


def descending_order(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Stable descending argsort of `scores [..., items]`: ties keep position order, padding last.

    Returns int32 positions. Float32 (and narrower) scores use the packed integer sort; float64
    scores use `jnp.argsort(stable=True)`.
    """
    key = jnp.where(mask, -scores, jnp.inf)
    key = jnp.where(key == 0, 0.0, key).astype(key.dtype)  # -0.0 ties with +0.0
    if jnp.dtype(key.dtype).itemsize > 4:
        return jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)
    # Order-preserving map of IEEE floats to signed ints: flip the magnitude bits of negatives.
    bits = _float_key(key)
    with jax.enable_x64(True):
        return _sort_packed(bits)


def document_keys(seed: int | jax.Array, doc_ids: jax.Array) -> jax.Array:
    """One key per document, `fold_in(key(seed), doc_id)`: independent of batching. `[batch]`."""
    base = jax.random.key(seed)
    return jax.vmap(lambda d: jax.random.fold_in(base, d))(doc_ids.astype(jnp.uint32))


def document_uniforms(mask: jax.Array, doc_ids: jax.Array, seed: int, rows: int) -> jax.Array:
    """Uniform [0, 1) draws `[batch, rows, items]`, one `jax.random` call per document key.

    Drawn as `[items, rows]` and transposed, so the draw for (row, item) does not depend on the
    padded width: results are identical however documents are batched or padded.
    """
    keys = document_keys(seed, doc_ids)
    return jax.vmap(lambda k: jax.random.uniform(k, (mask.shape[-1], rows)).T)(keys)


def random_orderings(mask: jax.Array, doc_ids: jax.Array, seed: int, num: int) -> jax.Array:
    """`num` uniform random orderings of each document's valid positions (padding last).

    Rows 0..num-1 of `document_uniforms(..., num + 3)` ranked descending. mask `[batch, items]`,
    doc_ids int `[batch]`. Returns int32 `[batch, num, items]`.
    """
    u = document_uniforms(mask, doc_ids, seed, num + 3)[:, :num]
    return descending_order(u, mask[:, None, :]).astype(jnp.int32)


def random_other_items(
    uniforms: jax.Array, length: jax.Array, tops: jax.Array, mode: str
) -> jax.Array:
    """Random comparison items r from uniforms `[batch, T]`, one per (document, target).

    length `[batch]`, tops int `[batch, T]` (the compared top items). mode "paper": r uniform over
    valid positions != top; "code_compatible": r uniform over positions 1..n-1, independent of top
    (quirk Q1). Returns int32 `[batch, T]`, -1 where n < 2.
    """
    m = jnp.maximum(length - 1, 1)[:, None]
    u = jnp.clip(jnp.floor(uniforms * m).astype(jnp.int32), 0, m - 1)
    r = u + (u >= tops).astype(jnp.int32) if mode == "paper" else u + 1
    return jnp.where(length[:, None] >= 2, r, -1).astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Decisions along curves.


def first_flip(
    logits: jax.Array, predicted: jax.Array, length: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """First k >= 1 whose decision differs from `predicted`, over k = 1..length.

    logits `[batch, R, items, classes]` (entry k-1 = after k removals), predicted `[batch]`,
    length `[batch]`. Returns (k `[batch, R]` int32 or -1, flipped-at-k bool `[batch, R, items]`).
    """
    n = logits.shape[2]
    valid_k = jnp.arange(1, n + 1)[None, None, :] <= length[:, None, None]
    flips = (jnp.argmax(logits, axis=-1) != predicted[:, None, None]) & valid_k
    k = jnp.where(jnp.any(flips, axis=-1), jnp.argmax(flips, axis=-1) + 1, -1)
    return k.astype(jnp.int32), flips


# ---------------------------------------------------------------------------------------------
# Exact minimum flip set (paper.md section 12).


def minimum_flip_set_from_z(
    z: jax.Array, alpha: jax.Array, mask: jax.Array, bias: jax.Array, predicted: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Smallest set of items whose removal (with renormalisation) changes the affine decision.

    z `[batch, items, classes]`, alpha `[batch, items]`, mask `[batch, items]`, bias `[classes]`,
    predicted int `[batch]`. For each competing class c: t_j = a_j (m_j + beta) with
    m_j = z_{j,y} - z_{j,c}, beta = b_y - b_c; the shortest prefix of t sorted descending whose sum
    exceeds sum_j t_j (= l_y - l_c) flips towards c. Proper subsets only; removing everything is the
    bias-only rule. Returns (k_min int32 `[batch]`, -1 when nothing flips; members bool
    `[batch, items]`, one minimum set).
    """
    n, num_classes = z.shape[1], z.shape[2]
    length = jnp.sum(mask, axis=-1).astype(jnp.int32)
    y = predicted
    z_y = jnp.take_along_axis(z, y[:, None, None], axis=2)  # [B, n, 1]
    beta = bias[y][:, None] - bias[None, :]  # [B, C]
    t = alpha[..., None] * (z_y - z + beta[:, None, :])  # [B, n, C]
    t = jnp.where(mask[..., None], t, 0.0)
    threshold = jnp.sum(t, axis=1)  # [B, C]
    # Only the sorted values are needed per class (the order is needed for the best class
    # only, below): a plain value sort, padding (-inf) last.
    t_cls = jnp.where(jnp.moveaxis(mask[..., None], 1, 2), jnp.moveaxis(t, 1, 2), -jnp.inf)
    t_sorted = _sort_descending_values(t_cls)  # [B, C, n]
    t_sorted = jnp.where(jnp.isfinite(t_sorted), t_sorted, 0.0)
    cum = _scan(t_sorted, 2, False)
    size_ok = jnp.arange(1, n + 1)[None, None, :] <= (length - 1)[:, None, None]
    exceeds = (cum > threshold[..., None]) & size_ok
    big = n + 1
    k_c = jnp.where(jnp.any(exceeds, axis=2), jnp.argmax(exceeds, axis=2) + 1, big)
    k_c = jnp.where(jnp.arange(num_classes)[None, :] == y[:, None], big, k_c)
    best_class = jnp.argmin(k_c, axis=1)
    k_best = jnp.min(k_c, axis=1)
    bias_flips = (jnp.argmax(bias) != y) & (length >= 1)
    k_min = jnp.where(k_best < big, k_best, jnp.where(bias_flips, length, -1)).astype(jnp.int32)
    t_best = jnp.take_along_axis(t, best_class[:, None, None], axis=2)[..., 0]  # [B, n]
    best_order = descending_order(t_best, mask)  # [B, n]
    rank = ranks_of(best_order)
    members = jnp.where(
        k_best[:, None] < big,
        rank < k_best[:, None],
        (k_min[:, None] == length[:, None]) & (k_min[:, None] > 0),
    )
    return k_min, members & mask
