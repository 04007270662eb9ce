"""Benchmark of the erasure suite's sorts: XLA against numpy through a host callback.

    python -m experiments.benchmark_sorting [--repeats=10]

The suite sorts int32 keys `[docs, rows, items]` (16 rows: the rankings and the random orderings)
on the erasure kernels' width ladder. Timed in turns, jitted, after their compilation:
`stable_argsort` (what the suite runs: counting or two-pass radix sorts on CPU), XLA's
two-operand stable sort (`lax_stable_argsort`), and numpy's sort of (key << 32 | position) through
`jax.pure_callback` (the suite's CPU path before: fast, but a program with a host callback never
enters JAX's persistent compilation cache); likewise value sorts (`sort_last_axis` against numpy).
All return the same arrays (checked). Prints a table and ends with one JSON line with the ratios
(numpy callback time / XLA time: >= 1 means XLA is at least as fast).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app

from attn_interp.erasure.sorting import lax_stable_argsort, sort_last_axis, stable_argsort
from experiments.benchmark_erasure import _REPEATS, _SEED, timed_interleaved

ROWS = 16
LADDER = {32: 64, 128: 32, 512: 8, 2048: 2}  # kernel width -> documents per kernel call


def _numpy_argsort(key) -> np.ndarray:
    packed = np.asarray(key).astype(np.int64)
    np.left_shift(packed, 32, out=packed)
    np.bitwise_or(packed, np.arange(packed.shape[-1], dtype=np.int64), out=packed)
    packed.sort(axis=-1)
    np.bitwise_and(packed, 0xFFFFFFFF, out=packed)
    return packed.astype(np.int32)


def _through_host(fn):
    def call(x):
        shape = jax.ShapeDtypeStruct(x.shape, jnp.int32)
        return jax.pure_callback(fn, shape, x, vmap_method="expand_dims")

    return jax.jit(call)


METHODS = {
    "argsort_xla": jax.jit(stable_argsort),
    "argsort_lax2": jax.jit(lax_stable_argsort),
    "argsort_numpy": _through_host(_numpy_argsort),
    "sort_xla": jax.jit(sort_last_axis),
    "sort_numpy": _through_host(lambda x: np.sort(np.asarray(x), axis=-1)),
}


def bench_width(n: int, docs: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + n)
    keys = rng.integers(-(2**31), 2**31, size=(docs, ROWS, n), dtype=np.int64)
    keys[:, :4] //= 2**24  # rows with many ties, as rankings of tied scores
    x = jnp.asarray(keys.astype(np.int32))
    timed = timed_interleaved(
        {m: lambda f=f: f(x).block_until_ready() for m, f in METHODS.items()}, repeats
    )
    agree = all(
        np.array_equal(timed[a][2], timed[b][2])
        for a, b in [
            ("argsort_xla", "argsort_numpy"),
            ("argsort_lax2", "argsort_numpy"),
            ("sort_xla", "sort_numpy"),
        ]
    )
    return {m: {"min_ms": 1e3 * t[0], "median_ms": 1e3 * t[1]} for m, t in timed.items()} | {
        "agree": agree
    }


def main(argv):
    del argv
    print(f"devices: {jax.devices()}, load average {os.getloadavg()[0]:.1f}")
    results = {n: bench_width(n, d, _REPEATS.value, _SEED.value) for n, d in LADDER.items()}
    print(f"{'width':>5} {'docs':>4} " + " ".join(f"{m:>14}" for m in METHODS) + "  (min ms)")
    for n, r in results.items():
        cells = " ".join(f"{r[m]['min_ms']:14.2f}" for m in METHODS)
        print(f"{n:5d} {LADDER[n]:4d} {cells}  {'same' if r['agree'] else 'DIFFER'}")
    line = {
        f"{kind}_xla_vs_numpy_{n}": r[f"{kind}_numpy"]["min_ms"] / r[f"{kind}_xla"]["min_ms"]
        for n, r in results.items()
        for kind in ("argsort", "sort")
    }
    line |= {
        f"argsort_xla_vs_lax2_{n}": r["argsort_lax2"]["min_ms"] / r["argsort_xla"]["min_ms"]
        for n, r in results.items()
    }
    line["outputs_agree"] = all(r["agree"] for r in results.values())
    line["load_average"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in line.items()}))


if __name__ == "__main__":
    app.run(main)
