"""Sorting for the orderings, all inside XLA: stable argsorts and value sorts of int32 keys,
order-preserving int32 keys of floats, and descending / ascending orders with ties by position and
padding last.

No host callbacks: JAX's persistent compilation cache does not store programs that call back into
Python (the callback's address is part of the program), so a re-run would compile the erasure
suite and the rank agreement again (~25 s per program under load). XLA:CPU's multi-operand sort
calls a compiled comparator per comparison and is ~10x slower than numpy's for rows of hundreds of
items; its single-operand sort of int32 is within ~2-3x of numpy's, so the CPU argsort is built
from those (`radix_stable_argsort`), or from comparisons for short rows (`counting_stable_argsort`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_COUNTING_MAX_ITEMS = 32  # [..., n, n] comparisons beat two sorts up to here (CPU)
_RADIX_MAX_ITEMS = 1 << 15  # a 16-bit half key and a 15-bit position fit one positive int32


def sort_last_axis(x: jax.Array) -> jax.Array:
    """Ascending sort of `x [..., items]` along its last axis (`jax.lax.sort`, one operand)."""
    return jax.lax.sort(x, dimension=x.ndim - 1)


def _positions(key: jax.Array) -> jax.Array:
    return jax.lax.broadcasted_iota(jnp.int32, key.shape, key.ndim - 1)


def lax_stable_argsort(key: jax.Array) -> jax.Array:
    """`stable_argsort` by a two-operand `jax.lax.sort` of (key, position) (non-CPU platforms,
    and CPU rows longer than 2**15 items)."""
    pair = (key, _positions(key))
    return jax.lax.sort(pair, dimension=key.ndim - 1, num_keys=1, is_stable=True)[1]


def counting_stable_argsort(key: jax.Array) -> jax.Array:
    """`stable_argsort` by counting: item i goes to rank #{j: key_j < key_i} + #{j < i: key_j =
    key_i}; `[..., n, n]` comparisons, so only for short rows."""
    ki, kj = key[..., :, None], key[..., None, :]
    pos = jnp.arange(key.shape[-1])
    before = (kj < ki) | ((kj == ki) & (pos[None, :] < pos[:, None]))
    return ranks_of(jnp.sum(before, axis=-1, dtype=jnp.int32))  # ranks -> their inverse


def radix_stable_argsort(key: jax.Array) -> jax.Array:
    """`stable_argsort` by two single-operand int32 sorts (least significant half first).

    Each pass sorts (16-bit half of the key << b) | slot, with b bits for a slot: the sorted
    numbers are distinct and their low bits are a stable argsort by that half. The second pass
    orders the slots of the first pass's order, so ties in the high half keep the low half's
    order, and ties in both keep positions (LSD radix sort). Needs items <= 2**15.
    """
    n = key.shape[-1]
    if n > _RADIX_MAX_ITEMS:
        raise ValueError(
            f"radix_stable_argsort takes rows of <= {_RADIX_MAX_ITEMS} items, got {n}."
        )
    bits = max(1, (n - 1).bit_length())
    low = jnp.int32((1 << bits) - 1)
    unsigned = key ^ jnp.int32(-(2**31))  # the same order, read as unsigned bit patterns
    slots = _positions(key)
    by_low = sort_last_axis(((unsigned & 0xFFFF) << bits) | slots) & low
    high = jnp.take_along_axis(jax.lax.shift_right_logical(unsigned, 16), by_low, axis=-1)
    return jnp.take_along_axis(by_low, sort_last_axis((high << bits) | slots) & low, axis=-1)


def _cpu_stable_argsort(key: jax.Array) -> jax.Array:
    n = key.shape[-1]
    if n <= _COUNTING_MAX_ITEMS:
        return counting_stable_argsort(key)
    if n <= _RADIX_MAX_ITEMS:
        return radix_stable_argsort(key)
    return lax_stable_argsort(key)


def stable_argsort(key: jax.Array) -> jax.Array:
    """Positions of an ascending stable sort of int32 `key [..., items]` (ties by position).

    On CPU `counting_stable_argsort` (up to 32 items) or `radix_stable_argsort`; elsewhere
    `lax_stable_argsort`. All give the same (unique) result. Returns int32 `[..., items]`.
    """
    key = key.astype(jnp.int32)
    return jax.lax.platform_dependent(key, cpu=_cpu_stable_argsort, default=lax_stable_argsort)


def _float_key(x: jax.Array) -> jax.Array:
    """Order-preserving map of float32 to int32 (an involution on the bit patterns)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def sort_descending_values(x: jax.Array) -> jax.Array:
    """Values of `x [..., items]` sorted descending along the last axis.

    Float32 goes through an int32 sort of order-preserving keys (`sort_last_axis`: exact, and much
    faster than a float sort on CPU); float64 uses `jnp.sort`.
    """
    if jnp.dtype(x.dtype).itemsize > 4:
        return -jnp.sort(-x, axis=-1)
    key = sort_last_axis(_float_key(-x))
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


def ascending_order(key: jax.Array) -> jax.Array:
    """Stable ascending argsort of int32 or float64 keys `[..., items]` -> int32 positions
    (`stable_argsort` for int32 keys; `jnp.argsort(stable=True)` for float keys)."""
    if jnp.issubdtype(key.dtype, jnp.integer):
        return stable_argsort(key)
    return jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)


def descending_order(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Stable descending argsort of `scores [..., items]`: ties keep position order, padding last.

    Returns int32 positions. Float32 (and narrower) scores are mapped to order-preserving int32 keys
    and go through `stable_argsort`; float64 scores use `jnp.argsort(stable=True)`.
    """
    return ascending_order(descending_keys(scores, mask))


def ranks_of(orders: jax.Array) -> jax.Array:
    """Inverse permutations: rank[..., i] = position of item i in the ordering. `[..., items]`."""
    n = orders.shape[-1]
    positions = jnp.broadcast_to(jnp.arange(n, dtype=orders.dtype), orders.shape)
    return jnp.put_along_axis(jnp.zeros_like(orders), orders, positions, axis=-1, inplace=False)
