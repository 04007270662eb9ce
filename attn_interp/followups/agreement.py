"""Rank agreement between attention and other importance rankings (Jain & Wallace 2019, section 3).

Per document: Kendall's tau-b between the attention weights and each other ranking's scores over
the document's valid items (ties counted as ties, not broken), its two-sided p-value, and the
top-k overlap of the two descending orderings. Everything is vectorised over the batch with a
valid-item mask; the pairwise comparisons run in blocks of documents (`jax.lax.map`) so the
`[block, rankings, items, items]` sign arrays stay within a memory budget.

Significance test: under independence, S = n_concordant - n_discordant has mean 0 and, with
tie groups t (in x) and u (in y) (Kendall 1970, as in scipy's "asymptotic" method),

    Var S = (v0 - vt - vu) / 18 + v1 / (2 n (n - 1)) + v2 / (9 n (n - 1) (n - 2)),
    v0 = n (n - 1) (2n + 5),  vt = sum t (t - 1) (2t + 5),  vu = sum u (u - 1) (2u + 5),
    v1 = sum t (t - 1) * sum u (u - 1),  v2 = sum t (t - 1) (t - 2) * sum u (u - 1) (u - 2);

z = S / sqrt(Var S) is compared with the standard normal (p = erfc(|z| / sqrt 2)). Tie-group
sums are taken per item (item i in a group of size t_i contributes f(t_i) / t_i).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from attn_interp.erasure.sorting import descending_order, ranks_of
from attn_interp.erasure.suite import aopc_k


class TauB(NamedTuple):
    """Kendall tau-b per document and ranking, NaN where undefined (n < 2, or all items tied in
    either ranking). tau, p_value, z: `[batch, rankings]`."""

    tau: jax.Array
    p_value: jax.Array
    z: jax.Array


class Agreement(NamedTuple):
    """Rank agreement of attention with R rankings for one batch.

    tau, p_value: `[batch, R]` (NaN where undefined).
    overlap: `[batch, R, K]` share of attention's top k that is also in the ranking's top k, for
      each k of `FollowupConfig.top_k` then `top_fractions`; NaN where n <= k (trivially 1).
    """

    tau: jax.Array
    p_value: jax.Array
    overlap: jax.Array


def _tau_one(x: jax.Array, ys: jax.Array, mask: jax.Array) -> tuple[jax.Array, ...]:
    """One document: x `[n]`, ys `[R, n]`, mask `[n]` -> (tau, p, z), each `[R]`."""
    dtype = x.dtype
    pair = mask[:, None] & mask[None, :]
    sx = jnp.where(pair, jnp.sign(x[:, None] - x[None, :]), 0).astype(jnp.int32)
    sy = jnp.where(pair, jnp.sign(ys[:, :, None] - ys[:, None, :]), 0).astype(jnp.int32)
    s = jnp.sum(sx[None] * sy, axis=(1, 2)) // 2  # n_c - n_d (each pair counted twice)
    tx = jnp.sum(pair & (sx == 0), axis=-1).astype(dtype)  # tie-group size of each item
    ty = jnp.sum(pair[None] & (sy == 0), axis=-1).astype(dtype)  # [R, n]
    n = jnp.sum(mask).astype(dtype)

    def group_sum(t, f):  # sum over tie groups of f(t), from per-item sizes
        return jnp.sum(jnp.where(mask, f(t) / jnp.maximum(t, 1.0), 0.0), axis=-1)

    def pairs(t):
        return t * (t - 1)

    n0 = n * (n - 1) / 2
    n1 = group_sum(tx, pairs) / 2
    n2 = group_sum(ty, pairs) / 2
    s = s.astype(dtype)
    denom = jnp.sqrt((n0 - n1) * (n0 - n2))
    defined = (n >= 2) & (n0 - n1 > 0) & (n0 - n2 > 0)
    tau = jnp.where(defined, s / jnp.where(defined, denom, 1.0), jnp.nan)

    def v(t):
        return pairs(t) * (2 * t + 5)

    def triples(t):
        return pairs(t) * (t - 2)

    m = n * (n - 1)
    var = (m * (2 * n + 5) - group_sum(tx, v) - group_sum(ty, v)) / 18
    var = var + group_sum(tx, pairs) * group_sum(ty, pairs) / (2 * jnp.maximum(m, 1))
    var = var + jnp.where(
        n > 2,
        group_sum(tx, triples) * group_sum(ty, triples) / (9 * m * jnp.maximum(n - 2, 1)),
        0.0,
    )
    ok = defined & (var > 0)
    z = jnp.where(ok, s / jnp.sqrt(jnp.where(ok, var, 1.0)), jnp.nan)
    p = jax.scipy.special.erfc(jnp.abs(z) / math.sqrt(2.0))
    return tau, p, z


def kendall_tau_b(
    x: jax.Array, ys: jax.Array, mask: jax.Array, *, block_docs: int | None = None
) -> TauB:
    """Kendall tau-b of x `[batch, items]` against each row of ys `[batch, R, items]` over the
    valid items (mask bool `[batch, items]`), with the asymptotic two-sided p-value (see the
    module docstring). `block_docs`: documents per block of the pairwise work (default: all)."""
    mask = mask.astype(bool)
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    x, ys = x.astype(dtype), ys.astype(dtype)
    b = x.shape[0]
    g = b if block_docs is None else max(1, min(b, block_docs))
    tau, p, z = jax.lax.map(lambda a: _tau_one(*a), (x, ys, mask), batch_size=g)
    return TauB(tau, p, z)


def top_k_overlap(x: jax.Array, ys: jax.Array, mask: jax.Array, k: jax.Array) -> jax.Array:
    """|top_k(x) & top_k(y)| / k per document and ranking, orderings descending with ties by
    position (the engine's `descending_order`). x `[batch, items]`, ys `[batch, R, items]`, mask
    `[batch, items]`, k int `[batch]` (>= 1). Returns `[batch, R]`; NaN where n <= k."""
    mask = mask.astype(bool)
    n = jnp.sum(mask, axis=-1)
    rank_x = ranks_of(descending_order(x, mask))  # [B, n]
    rank_y = ranks_of(descending_order(ys, mask[:, None, :]))  # [B, R, n]
    kk = k[:, None, None]
    both = (rank_x[:, None, :] < kk) & (rank_y < kk) & mask[:, None, :]
    share = jnp.sum(both, axis=-1) / jnp.maximum(k, 1)[:, None]
    return jnp.where((n > k)[:, None], share.astype(x.dtype), jnp.nan)


def overlap_ks(
    mask: jax.Array, top_k: tuple[int, ...], top_fractions: tuple[float, ...]
) -> jax.Array:
    """The k of every overlap column, int `[batch, len(top_k) + len(top_fractions)]`: fixed k,
    then ceil(fraction * n) (at least 1, `aopc_k`)."""
    n = jnp.sum(mask.astype(bool), axis=-1).astype(jnp.int32)
    cols = [jnp.full_like(n, k) for k in top_k] + [aopc_k(n, f) for f in top_fractions]
    return jnp.stack(cols, axis=1)


def rank_agreement(
    attention: jax.Array,
    others: jax.Array,
    mask: jax.Array,
    *,
    top_k: tuple[int, ...] = (1, 3, 5),
    top_fractions: tuple[float, ...] = (0.1,),
    block_docs: int | None = None,
) -> Agreement:
    """Kendall tau-b and top-k overlap of attention `[batch, items]` with others
    `[batch, R, items]` over the valid items of mask `[batch, items]` (jittable)."""
    tau = kendall_tau_b(attention, others, mask, block_docs=block_docs)
    ks = overlap_ks(mask, top_k, top_fractions)
    dtype = tau.tau.dtype
    overlap = jnp.stack(
        [
            top_k_overlap(attention.astype(dtype), others.astype(dtype), mask, ks[:, j])
            for j in range(ks.shape[1])
        ],
        axis=-1,
    )
    return Agreement(tau.tau, tau.p_value, overlap)


def block_docs_for(items: int, rankings: int, budget_bytes: int) -> int:
    """Documents per block so that the int32 pairwise sign arrays (about 4 per ranking pair) of
    one block stay under `budget_bytes`."""
    per_doc = 16 * (rankings + 1) * items * items
    return max(1, budget_bytes // per_doc)
