"""Array primitives shared by the erasure kernels: exact cumulative sums, per-row gathers, and
running a per-document function block by block of documents."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Head = Callable[[jax.Array, jax.Array], jax.Array]
# Full float32 products on every platform: TF32 on GPUs would decide near-ties differently.
HIGHEST = jax.lax.Precision.HIGHEST


def cumulative_sum(x: jax.Array, axis: int, reverse: bool, exclusive: bool = False) -> jax.Array:
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


def gather_items(x: jax.Array, index: jax.Array) -> jax.Array:
    """x `[batch, items, ...]`, index `[batch, ...k]` -> `[batch, ...k, ...]` (per-row gather)."""
    return jax.vmap(lambda row, idx: row[idx])(x, index)


def docs_per_block(batch: int, bytes_per_doc: int, cpu_block_bytes: int) -> int:
    """Documents per `jax.lax.map` block: cache-sized blocks on CPU; one block on accelerators,
    whose memory bandwidth does not need the blocking and where a loop of small blocks would
    leave the device idle."""
    if jax.default_backend() != "cpu":
        return batch
    most = max(1, min(batch, cpu_block_bytes // max(bytes_per_doc, 1)))
    blocks = -(-batch // most)
    return -(-batch // blocks)  # blocks of equal size (no small remainder block)


def map_in_blocks(
    fn: Callable, operands: tuple[jax.Array, ...], bytes_per_doc: int, cpu_block_bytes: int
):
    """`fn(*operands)` (each operand `[batch, ...]`, results a pytree of `[batch, ...]` arrays)
    block by block of documents (`docs_per_block`): one call when one block holds the batch,
    else `jax.lax.map` over single documents, vectorised within each block. Every document's
    result is the same either way (`fn` treats documents independently)."""
    batch = operands[0].shape[0]
    g = docs_per_block(batch, bytes_per_doc, cpu_block_bytes)
    if g >= batch:
        return fn(*operands)

    def one(xs):
        return jax.tree.map(lambda v: v[0], fn(*(x[None] for x in xs)))

    return jax.lax.map(one, operands, batch_size=g)
