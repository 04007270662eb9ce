"""Sorting for the orderings: stable argsorts and value sorts of int32 keys (numpy through a
host callback on CPU, `jax.lax.sort` elsewhere), order-preserving int32 keys of floats, and
descending / ascending orders with ties by position and padding last."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


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


def sort_descending_values(x: jax.Array, host_sorts: bool) -> jax.Array:
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


def ranks_of(orders: jax.Array) -> jax.Array:
    """Inverse permutations: rank[..., i] = position of item i in the ordering. `[..., items]`."""
    n = orders.shape[-1]
    positions = jnp.broadcast_to(jnp.arange(n, dtype=orders.dtype), orders.shape)
    return jnp.put_along_axis(jnp.zeros_like(orders), orders, positions, axis=-1, inplace=False)
