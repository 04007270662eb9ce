"""Data parallelism over all devices with JAX's own SPMD machinery (one mesh axis, "data").

* `initialize_distributed(DistributedConfig(...))`: `jax.distributed.initialize` for multi-host
  runs (TPU pods, several GPU hosts); a no-op when no coordinator is named.
* `data_mesh()`: a 1-D `jax.sharding.Mesh` over every device of every process, axis "data".
* `replicate(node, mesh)`: puts the state of an `nnx.Module` / `nnx.Optimizer` on every device.
* `shard_rows(mesh, *arrays)`: batch arrays (identical on every host) -> global `jax.Array`s split
  on their first axis over "data"; each host transfers only its own rows
  (`jax.make_array_from_process_local_data`).
* `pad_rows(n, *arrays)`: filler rows so the batch axis divides the device count (labels 0,
  weights 0, doc_index -1: they count neither in the loss nor in accuracy nor in erasure results).
* `use_mesh(mesh)`: a context in which `attn_interp.train.loop.fit` / `evaluate` and the erasure
  launcher use `mesh` when no mesh argument is given (launchers that cannot pass one through).

Parameters and optimizer state are replicated; jit inserts the gradient all-reduce. With
`jax_threefry_partitionable` (the default) dropout masks do not depend on the sharding, so a
sharded step equals the single-device step up to float reduction order.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

__all__ = [
    "DATA_AXIS",
    "DistributedConfig",
    "current_mesh",
    "data_mesh",
    "data_size",
    "gather",
    "initialize_distributed",
    "pad_rows",
    "replicate",
    "resolve_mesh",
    "shard_rows",
    "use_mesh",
]

_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "attn_interp_mesh", default=None
)


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-host launch settings (`jax.distributed.initialize`).

    coordinator_address: "host:port" of process 0; None = single process (nothing to initialise).
    num_processes / process_id: total processes and this one's rank (0-based). On Cloud TPU and
      SLURM JAX can detect both; leave them None there.
    """

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def __post_init__(self):
        if self.coordinator_address is None and (
            self.num_processes is not None or self.process_id is not None
        ):
            raise ValueError(
                "DistributedConfig: num_processes / process_id were given without "
                "coordinator_address; pass --coordinator_address=HOST:PORT of process 0 as well."
            )
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {self.num_processes}.")
        if self.process_id is not None and self.num_processes is not None:
            if not 0 <= self.process_id < self.num_processes:
                raise ValueError(
                    f"process_id={self.process_id} must lie in [0, num_processes="
                    f"{self.num_processes})."
                )


def initialize_distributed(cfg: DistributedConfig) -> bool:
    """Calls `jax.distributed.initialize` when `cfg` names a coordinator; returns whether it did.

    Must run before the first JAX computation of the process.
    """
    if cfg.coordinator_address is None:
        return False
    jax.distributed.initialize(
        coordinator_address=cfg.coordinator_address,
        num_processes=cfg.num_processes,
        process_id=cfg.process_id,
    )
    return True


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """1-D mesh with axis "data" over `devices` (default: every device of every process)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("data_mesh() got no devices.")
    return Mesh(np.asarray(devs, dtype=object), (DATA_AXIS,))


@contextlib.contextmanager
def use_mesh(mesh: Mesh | None) -> Iterator[Mesh | None]:
    """Within the block, `current_mesh()` returns `mesh` (None: single-device behaviour)."""
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh() -> Mesh | None:
    """The mesh set by the innermost `use_mesh`, or None."""
    return _MESH.get()


def resolve_mesh(mesh: Mesh | None) -> Mesh | None:
    """`mesh` if given, else `current_mesh()`; checks that it has the "data" axis."""
    mesh = current_mesh() if mesh is None else mesh
    if mesh is not None and DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh axes {mesh.axis_names} lack {DATA_AXIS!r}; build it with "
            "attn_interp.parallel.data_mesh()."
        )
    return mesh


def data_size(mesh: Mesh) -> int:
    """Number of devices along the "data" axis."""
    return int(mesh.shape[DATA_AXIS])


def replicate(node: nnx.Module | nnx.Optimizer, mesh: Mesh) -> None:
    """Places every array of `node`'s state on all devices of `mesh` (in place)."""
    sharding = NamedSharding(mesh, P())
    state = nnx.state(node)
    if jax.process_count() == 1:
        placed = jax.device_put(state, sharding)
    else:

        def put(x):
            if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                data = jax.random.key_data(x)
                impl = jax.random.key_impl(x)
                arr = jax.make_array_from_process_local_data(sharding, np.asarray(data))
                return jax.random.wrap_key_data(arr, impl=impl)
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))

        placed = jax.tree.map(put, state)
    nnx.update(node, placed)


def pad_rows(multiple: int, *arrays: np.ndarray, fill: Sequence[int | float] | None = None):
    """Appends filler rows so that every array's first axis is a multiple of `multiple`.

    arrays: numpy arrays with the same first axis `[batch, ...]`; fill: value of the filler rows per
    array (default 0 each; pass -1 for doc_index). Returns the arrays unchanged when they fit.
    """
    if multiple < 1:
        raise ValueError(f"pad_rows: multiple must be >= 1, got {multiple}.")
    rows = {int(np.shape(a)[0]) for a in arrays}
    if len(rows) != 1:
        raise ValueError(f"pad_rows: arrays disagree on the batch axis ({sorted(rows)}).")
    n = rows.pop()
    extra = -n % multiple
    fill = [0] * len(arrays) if fill is None else list(fill)
    if len(fill) != len(arrays):
        raise ValueError(f"pad_rows: {len(arrays)} arrays but {len(fill)} fill values.")
    if extra == 0:
        return tuple(np.asarray(a) for a in arrays)
    out = []
    for a, value in zip(arrays, fill, strict=True):
        a = np.asarray(a)
        pad = np.full((extra, *a.shape[1:]), value, dtype=a.dtype)
        out.append(np.concatenate([a, pad]))
    return tuple(out)


def _local_rows(sharding: NamedSharding, shape: tuple[int, ...]) -> slice:
    """The contiguous rows of a batch-sharded global array held by this process's devices."""
    starts, stops = [], []
    for index in sharding.addressable_devices_indices_map(shape).values():
        rows = index[0]
        starts.append(rows.start or 0)
        stops.append(shape[0] if rows.stop is None else rows.stop)
    lo, hi = min(starts), max(stops)
    return slice(lo, hi)


def shard_rows(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
    """Global batch arrays (the same on every host) -> `jax.Array`s sharded on axis 0 over "data".

    The batch axis must divide the "data" axis size (use `pad_rows`). Each process passes only
    the rows its own devices hold to `jax.make_array_from_process_local_data`.
    """
    k = data_size(mesh)
    out = []
    for a in arrays:
        a = np.asarray(a)
        if a.shape[0] % k:
            raise ValueError(
                f"batch of {a.shape[0]} rows does not split over {k} devices; pad it with "
                "attn_interp.parallel.pad_rows first."
            )
        spec = P(DATA_AXIS, *([None] * (a.ndim - 1)))
        sharding = NamedSharding(mesh, spec)
        local = a[_local_rows(sharding, a.shape)]
        out.append(jax.make_array_from_process_local_data(sharding, local, a.shape))
    return tuple(out)


def gather(x: jax.Array | np.ndarray) -> np.ndarray:
    """A (possibly multi-host sharded) array as one numpy array on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
