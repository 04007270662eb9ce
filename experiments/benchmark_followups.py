"""Benchmark of the follow-up tests: rank agreement, weight baselines, and the batched adversary
against an honest per-document loop (Jain & Wallace's code optimises one document at a time).

    python -m experiments.benchmark_followups [--repeats=3] [--adversary_steps=300]

Synthetic HAN-like (64 documents x 8 items) and FLAN-like (64 x 256) inputs as in
`experiments.benchmark_erasure` (d = 100, 10 classes, peaked attention). The per-document loop
runs the same jitted search (same epsilons, restarts, steps) on one document at a time, padded to
the batch's width so it compiles once, and is timed after its warm-up like the batched call; the
two are timed in turns. Both return the same per-document results (checked). Prints a table and
ends with one JSON line with the ratios.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from absl import app, flags

from attn_interp.erasure.config import AffineParams
from attn_interp.followups import FollowupConfig, adversarial_attention, run_followups
from attn_interp.followups.adversarial import AdversarySettings, search_problem
from attn_interp.models.attention import masked_softmax
from experiments.benchmark_erasure import SHAPES, make_inputs, timed_interleaved

# --repeats and --seed are benchmark_erasure's flags (imported with its inputs).
_STEPS = flags.DEFINE_integer(
    "adversary_steps", None, "adversary steps (default: FollowupConfig's)"
)


def _adversary_kwargs(cfg: FollowupConfig) -> dict:
    return dict(
        epsilons=cfg.epsilons,
        restarts=cfg.restarts,
        steps=cfg.steps,
        learning_rate=cfg.learning_rate,
        penalty=cfg.penalty,
        target_fraction=cfg.target_fraction,
        seed=cfg.seed,
    )


def _stepwise(settings: AdversarySettings):
    """Jain & Wallace's structure: per document, a Python loop over optimiser steps, each step one
    compiled call (forward, backward, Adam update; their code runs these eagerly in PyTorch)."""

    def problem(v, a, m, i, affine):
        return search_problem(v, a, m, i, affine, head=None, settings=settings)

    init = jax.jit(lambda *x: problem(*x).init)
    step = jax.jit(lambda c, *x: problem(*x).step(c))
    finish = jax.jit(lambda c, *x: problem(*x).finish(c))

    def run(*doc):
        carry = init(*doc)
        for _ in range(settings.steps):
            carry = step(carry, *doc)
        return finish(carry, *doc)[1]

    return run


def step_cost(doc: tuple, affine: AffineParams, settings: AdversarySettings) -> dict:
    """XLA's cost analysis of one optimiser step of one document (all its epsilons x restarts):
    floating-point operations and transcendentals (exp, log, sqrt), load-independent."""

    def step(carry):
        return search_problem(*doc, affine, head=None, settings=settings).step(carry)

    init = search_problem(*doc, affine, head=None, settings=settings).init
    cost = jax.jit(step).lower(init).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost["flops"]), "transcendentals": float(cost["transcendentals"])}


def bench_shape(name: str, b: int, n: int, cfg: FollowupConfig, repeats: int, seed: int) -> dict:
    values, scores, mask, kernel, bias = make_inputs(b, n, seed)
    affine = AffineParams(jax.numpy.asarray(kernel), jax.numpy.asarray(bias))
    alpha = np.asarray(masked_softmax(jax.numpy.asarray(scores), mask))
    ids = np.arange(b)
    adv = _adversary_kwargs(cfg)

    def part(**switches):
        c = dataclasses.replace(cfg, agreement=False, baselines=False, adversarial=False)
        c = dataclasses.replace(c, **switches)
        return lambda: jax.block_until_ready(
            run_followups(values, scores, mask, config=c, affine=affine)
        )

    def batched():
        return jax.block_until_ready(
            adversarial_attention(values, alpha, mask, ids, affine=affine, **adv).js
        )

    def per_document():
        return np.concatenate(
            [
                np.asarray(
                    adversarial_attention(
                        values[i : i + 1],
                        alpha[i : i + 1],
                        mask[i : i + 1],
                        ids[i : i + 1],
                        affine=affine,
                        **adv,
                    ).js
                )
                for i in range(b)
            ]
        )

    stepwise = _stepwise(AdversarySettings(**adv))

    def per_document_stepwise():
        docs = [
            (values[i : i + 1], alpha[i : i + 1], mask[i : i + 1], ids[i : i + 1]) for i in range(b)
        ]
        return np.concatenate([np.asarray(stepwise(*d, affine)) for d in docs])

    fns = {
        "agreement": part(agreement=True),
        "baselines": part(baselines=True),
        "adversary batched": batched,
        "adversary per document": per_document,
        "adversary per doc+step": per_document_stepwise,
    }
    t = timed_interleaved(fns, repeats)
    full = mask.sum(-1).argmax()  # the widest document: the padded width every step computes
    cost = step_cost(
        (values[full : full + 1], alpha[full : full + 1], mask[full : full + 1], ids[:1]),
        affine,
        AdversarySettings(**adv),
    )
    js_b, js_d = np.asarray(t["adversary batched"][2]), t["adversary per document"][2]
    return {
        "shape": name,
        "batch": b,
        "items": n,
        "seconds": {k: v[0] for k, v in t.items()},
        "median_seconds": {k: v[1] for k, v in t.items()},
        "adversary_ratio": t["adversary per document"][0] / t["adversary batched"][0],
        "stepwise_ratio": t["adversary per doc+step"][0] / t["adversary batched"][0],
        "max_js_difference": float(np.max(np.abs(js_b - js_d))),
        "step_cost_per_document": cost,
        "microseconds_per_document_step": 1e6 * t["adversary batched"][0] / (b * cfg.steps),
    }


def main(argv):
    del argv
    cfg = FollowupConfig()
    if _STEPS.value:
        cfg = dataclasses.replace(cfg, steps=_STEPS.value)
    rows = [
        bench_shape(name, b, n, cfg, flags.FLAGS.repeats, flags.FLAGS.seed)
        for name, (b, n) in SHAPES.items()
    ]
    print(
        f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"adversary: {len(cfg.epsilons)} epsilons x {cfg.restarts} restarts x {cfg.steps} steps"
    )
    print(f"{'shape':6} {'part':24} {'min s':>9} {'median s':>9}")
    for r in rows:
        for part, sec in r["seconds"].items():
            print(f"{r['shape']:6} {part:24} {sec:9.4f} {r['median_seconds'][part]:9.4f}")
        print(
            f"{r['shape']:6} {'batched vs per document':24} {r['adversary_ratio']:9.1f}x "
            f"(max |JS batched - per document| {r['max_js_difference']:.1e})"
        )
        print(f"{r['shape']:6} {'batched vs per doc+step':24} {r['stepwise_ratio']:9.1f}x")
        c = r["step_cost_per_document"]
        print(
            f"{r['shape']:6} one step of one document: {c['flops'] / 1e3:.1f} kFLOP, "
            f"{c['transcendentals'] / 1e3:.2f} k transcendentals; batched "
            f"{r['microseconds_per_document_step']:.1f} us per document-step"
        )
    print(
        json.dumps(
            {
                "benchmark": "followups",
                "backend": jax.default_backend(),
                "ratios": {r["shape"]: r["adversary_ratio"] for r in rows},
                "stepwise_ratios": {r["shape"]: r["stepwise_ratio"] for r in rows},
                "seconds": {r["shape"]: r["seconds"] for r in rows},
                "step_cost_per_document": {r["shape"]: r["step_cost_per_document"] for r in rows},
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
