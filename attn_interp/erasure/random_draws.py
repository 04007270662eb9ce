"""Per-document random draws, independent of batching and padding: uniform random orderings of
the valid items and the random comparison items of the single-erasure tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.sorting import ascending_order


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


def random_orderings(mask: jax.Array, doc_ids: jax.Array, seed: int, num: int) -> jax.Array:
    """`num` uniform random orderings of each document's valid positions (padding last): the
    sorted `random_sort_keys`. mask `[batch, items]`, doc_ids int `[batch]`. Returns int32
    `[batch, num, items]`."""
    return ascending_order(random_sort_keys(mask, doc_ids, seed, num))


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
