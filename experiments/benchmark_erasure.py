"""Benchmark of the erasure suite: sequential reference vs mask path vs closed form.

    python -m experiments.benchmark_erasure [--repeats=5]

On synthetic HAN-like (64 documents x 8 items) and FLAN-like (64 x 256) inputs, d = 100, 10
classes, realistic peaked attention (softmax of 3 x normal scores), it times the full suite (all single
erasures, attention desc/asc, gradient, gradient x attention and 5 random orderings, first flips)
three ways and checks that the outputs agree. Throughput is evaluations per second, one evaluation
being one (document, erasure) output: B * n single erasures + 9 * B * n prefix removals, the same
count for every method, so ratios of throughput are ratios of time. Prints a table and ends with one
JSON line.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from attn_interp.erasure import ErasureConfig, run_suite
from attn_interp.erasure.primitives import HIGHEST
from attn_interp.erasure.random_draws import random_orderings
from attn_interp.erasure.reference import SequentialReference
from attn_interp.models.attention import masked_softmax

_REPEATS = flags.DEFINE_integer("repeats", 10, "timed repeats per method and shape")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the synthetic inputs")

SHAPES = {"han": (64, 8), "flan": (64, 256)}
D, C, NUM_RANDOM = 100, 10, 5
RANKINGS = ("attention", "attention_asc", "gradient", "grad_x_attention")
ORDERINGS = RANKINGS + tuple(f"random{i}" for i in range(NUM_RANDOM))


def make_inputs(b: int, n: int, seed: int):
    """Documents with a class signal: each item carries its document's class with probability 0.5
    (else a random class) along that class's column of the head, plus unit noise; peaked attention
    is a softmax of 3 x normal scores, independent of the items."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(2, n // 2), n + 1, size=b)
    mask = np.arange(n)[None, :] < lengths[:, None]
    kernel = (rng.normal(size=(D, C)) / np.sqrt(D)).astype(np.float32)
    bias = (0.1 * rng.normal(size=C)).astype(np.float32)
    doc_class = rng.integers(0, C, size=(b, 1))
    item_class = np.where(rng.random((b, n)) < 0.5, doc_class, rng.integers(0, C, size=(b, n)))
    direction = (kernel / np.sum(kernel * kernel, axis=0, keepdims=True)).T  # [C, D]
    values = rng.normal(size=(b, n, D)) + 1.5 * direction[item_class]
    values = (values * mask[..., None]).astype(np.float32)
    scores = (3.0 * rng.normal(size=(b, n))).astype(np.float32)
    return values, scores, mask, kernel, bias


def timed_interleaved(fns: dict, repeats: int) -> dict:
    """Min and median seconds of each function, timed in turns (so load changes hit all alike)."""
    outs = {name: fn() for name, fn in fns.items()}  # warm-up / compile
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (min(t), float(np.median(t)), outs[name]) for name, t in times.items()}


def bench_shape(name: str, b: int, n: int, repeats: int, seed: int) -> dict:
    values, scores, mask, kernel, bias = make_inputs(b, n, seed)
    kj, bj = jnp.asarray(kernel), jnp.asarray(bias)

    def head(v, w):
        context = jnp.einsum("bn,bnd->bd", w, v, precision=HIGHEST)
        return jnp.matmul(context, kj, precision=HIGHEST) + bj  # no TF32 on GPUs

    # The reference's outputs only: single erasures and first flips (no AOPC, no minimum set).
    same = dict(
        rankings=RANKINGS,
        num_random=NUM_RANDOM,
        aopc=False,
        sufficiency=False,
        minimum_flip_set=False,
        store_item_arrays=False,
    )
    cfg_closed = ErasureConfig(method="closed_form", **same)
    cfg_mask = ErasureConfig(method="mask", **same)
    # Everything on top: AOPC comprehensiveness + sufficiency curves, exact minimum flip sets.
    cfg_full = ErasureConfig(
        method="closed_form", rankings=RANKINGS, num_random=NUM_RANDOM, store_item_arrays=False
    )
    vj, sj, mj = jnp.asarray(values), jnp.asarray(scores), jnp.asarray(mask)
    alpha = masked_softmax(sj, mj)
    predicted = np.asarray(jnp.argmax(head(vj, alpha), -1))
    orders = np.asarray(random_orderings(mj, jnp.arange(b), cfg_closed.seed, NUM_RANDOM))
    ref = SequentialReference(head)

    def suite(cfg):
        return lambda: run_suite(
            vj, sj, mj, head=head, affine=(kj, bj), predicted=predicted, config=cfg
        )

    runs = {
        "reference": lambda: ref.suite(vj, alpha, mj, predicted, orders),
        "mask": suite(cfg_mask),
        "closed_form": suite(cfg_closed),
        "closed_full": suite(cfg_full),
    }
    evals = b * n * (1 + len(ORDERINGS))
    result = {"shape": [b, n, D, C], "evaluations": evals}
    outs = {}
    for method, (t_min, t_med, out) in timed_interleaved(runs, repeats).items():
        outs[method] = out
        result[method] = {"min_s": t_min, "median_s": t_med, "evals_per_s": evals / t_min}
    # Agreement of the outputs with the reference: first flips, removed mass and fractions.
    mismatches, k_differs = {}, {}
    for method in ("mask", "closed_form", "closed_full"):
        bad = 0
        for o in ORDERINGS:
            curve = outs[method].rankings[o]
            for col in ("k", "probmass", "frac"):
                a, r = getattr(curve, col), outs["reference"][f"rank_{o}_{col}"]
                bad += int(np.sum(~np.isclose(a, r, atol=1e-5)))
            k_ref = outs["reference"][f"rank_{o}_k"]
            docs = np.flatnonzero(curve.k != k_ref)
            if docs.size:  # which documents, and k (method vs reference)
                k_differs.setdefault(method, {})[o] = [
                    [int(i), int(curve.k[i]), int(k_ref[i])] for i in docs[:5]
                ]
        mismatches[method] = bad
    result["mismatches_vs_reference"] = mismatches
    result["first_flip_differs"] = k_differs
    result["outputs_agree"] = not any(mismatches.values())
    k_att = outs["closed_form"].rankings["attention"].k
    frac = outs["closed_form"].rankings["attention"].frac
    result["attention_k"] = {
        "never_flip_share": float(np.mean(k_att == -1)),
        "k1_share": float(np.mean(k_att == 1)),
        "median_fraction_flipped": float(np.median(frac[frac > 0])) if (frac > 0).any() else None,
    }
    k_rand = outs["closed_form"].rankings["random0"].k
    result["random0_never_flip_share"] = float(np.mean(k_rand == -1))
    f_rand = outs["closed_form"].rankings["random0"].frac
    result["random0_median_fraction_flipped"] = (
        float(np.median(f_rand[f_rand > 0])) if (f_rand > 0).any() else None
    )
    return result


def main(argv):
    del argv
    print(f"devices: {jax.devices()}")
    results = {
        name: bench_shape(name, b, n, _REPEATS.value, _SEED.value)
        for name, (b, n) in SHAPES.items()
    }
    header = (
        f"{'shape':6} {'method':12} {'min ms':>10} {'median ms':>10} {'Mevals/s':>9} {'vs ref':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ref = r["reference"]["min_s"]
        for method in ("reference", "mask", "closed_form", "closed_full"):
            m = r[method]
            print(
                f"{name:6} {method:12} {1e3 * m['min_s']:10.2f} {1e3 * m['median_s']:10.2f} "
                f"{m['evals_per_s'] / 1e6:9.3f} {ref / m['min_s']:8.1f}x"
            )
        print(
            f"{name:6} mismatches vs reference: {r['mismatches_vs_reference']} "
            f"{r['first_flip_differs'] or ''}; "
            f"attention flips: {r['attention_k']}"
        )
    line = {
        "closed_vs_reference_han": results["han"]["reference"]["min_s"]
        / results["han"]["closed_form"]["min_s"],
        "closed_vs_reference_flan": results["flan"]["reference"]["min_s"]
        / results["flan"]["closed_form"]["min_s"],
        "mask_vs_reference": min(
            r["reference"]["min_s"] / r["mask"]["min_s"] for r in results.values()
        ),
        "mask_vs_reference_han": results["han"]["reference"]["min_s"]
        / results["han"]["mask"]["min_s"],
        "mask_vs_reference_flan": results["flan"]["reference"]["min_s"]
        / results["flan"]["mask"]["min_s"],
        "closed_full_vs_reference_han": results["han"]["reference"]["min_s"]
        / results["han"]["closed_full"]["min_s"],
        "closed_full_vs_reference_flan": results["flan"]["reference"]["min_s"]
        / results["flan"]["closed_full"]["min_s"],
        "outputs_agree": all(r["outputs_agree"] for r in results.values()),
        "device": str(jax.devices()[0].platform),
        "shapes": results,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    app.run(main)
