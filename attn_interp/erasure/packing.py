"""A pytree of `[batch, ...]` arrays as one `[batch, columns]` buffer per dtype, and back.

The suite kernel returns a few dozen named fields; fetching each from the device is one transfer
(about 10 us each on CPU, a sixth of the HAN-shape suite's time). Packed inside the jitted
kernel, the fields cross as one buffer per dtype and are cut back into their named, shaped
fields on the host as numpy views. The batch axis stays first, so a buffer is split over devices
like its fields.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Layout(NamedTuple):
    """Where each leaf of a pytree sits in the packed buffers."""

    treedef: Any
    # Per leaf: (buffer index, first column, shape after the batch axis).
    slots: tuple[tuple[int, int, tuple[int, ...]], ...]


def _groups(leaves) -> dict:
    """dtype -> indices of the leaves of that dtype, in order of first appearance."""
    groups: dict = {}
    for i, leaf in enumerate(leaves):
        groups.setdefault(np.dtype(leaf.dtype), []).append(i)
    return groups


def pack(tree) -> tuple[jax.Array, ...]:
    """Every leaf `[batch, ...]` of `tree` flattened to `[batch, size]` and concatenated with the
    leaves of its dtype: one `[batch, columns]` buffer per dtype (traceable)."""
    leaves = jax.tree.leaves(tree)
    return tuple(
        jnp.concatenate([leaves[i].reshape(leaves[i].shape[0], -1) for i in idx], axis=1)
        for idx in _groups(leaves).values()
    )


def layout(shapes) -> Layout:
    """The `Layout` of `pack` for a pytree of arrays or `jax.ShapeDtypeStruct`s (e.g. the output
    of `jax.eval_shape`)."""
    leaves, treedef = jax.tree.flatten(shapes)
    slots: list = [None] * len(leaves)
    for b, idx in enumerate(_groups(leaves).values()):
        col = 0
        for i in idx:
            shape = tuple(leaves[i].shape[1:])
            slots[i] = (b, col, shape)
            col += int(np.prod(shape, dtype=np.int64))
    return Layout(treedef, tuple(slots))


def unpack(buffers, where: Layout):
    """The pytree packed into host `buffers` (numpy `[batch, columns]` each): views, no copies."""
    leaves = []
    for b, col, shape in where.slots:
        buf = np.asarray(buffers[b])
        size = int(np.prod(shape, dtype=np.int64))
        leaves.append(buf[:, col : col + size].reshape(buf.shape[0], *shape))
    return jax.tree.unflatten(where.treedef, leaves)
