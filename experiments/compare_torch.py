"""Training steps of the JAX models against the same models in PyTorch (`experiments.torch_reference`).

Per architecture: the paper's preset, the Flax model's initial parameters copied into PyTorch, the
same training batches (epoch 0 of the dataset's own batching; JAX gets them as the training loop
does: shape ladder, HAN packed). Checks (dropout off, first batch): both losses agree within
`LOSS_RTOL`, and again after one training step each (gradients, clipping and Adam agree within
`STEP_RTOL`). Then `sample` batches spread over the epoch are timed in rounds, JAX and PyTorch in
turns (which goes first alternates), so machine load hits both alike; JAX's first call of each
shape is timed separately as compilation. A step is the mean over the sampled batches of one
round; rounds give min and median. Also reported: the ratio of CPU time (this process, all
threads: XLA's pool for JAX, `--torch_threads` for PyTorch) per round, median over rounds. It
moves less with the machine's load than wall time, since a 2-thread XLA step waits for whichever
thread the scheduler parked; against one PyTorch thread it charges JAX for both of its threads,
so it is the stricter comparison there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time

import jax
import numpy as np
from flax import nnx

LOSS_RTOL = 1e-5  # float32, both frameworks, same parameters and documents
STEP_RTOL = 1e-4  # after one step: Adam's first update is ~lr * sign(grad), sensitive to rounding


def _jax_key(tokens) -> tuple:
    return tuple(np.shape(a) for a in jax.tree.leaves(tokens))


def _timed(fn) -> float:
    return _timed_both(fn)[0]


def _timed_both(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all its threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _stats(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def _check(name: str, jax_loss: float, torch_loss: float, rtol: float) -> bool:
    ok = abs(jax_loss - torch_loss) <= rtol * max(1.0, abs(torch_loss))
    print(
        f"  {name}: JAX {jax_loss:.7f} PyTorch {torch_loss:.7f} "
        f"(|diff| {abs(jax_loss - torch_loss):.1e}, tolerance {rtol:g} relative) "
        f"{'ok' if ok else 'MISMATCH'}",
        flush=True,
    )
    return ok


def compare_arch(loaded, vocab, arch: str, *, repeats: int, sample: int, lr: float | None) -> dict:
    """Checks and timings of one architecture (see the module docstring)."""
    import torch

    from attn_interp import data as data_lib
    from attn_interp.data.shapes import batch_config, bucket_batches
    from attn_interp.models import ModelConfig, make_model, packing_gap
    from attn_interp.train import loop
    from attn_interp.train.config import preset_for
    from attn_interp.train.optim import make_optimizer
    from experiments.torch_reference import TorchClassifier, eval_loss, make_step

    preset = preset_for(loaded.name, arch, train_docs=len(loaded.splits["train"]))
    train_cfg = preset.train if lr is None else dataclasses.replace(preset.train, learning_rate=lr)
    model_cfg = ModelConfig(
        arch,
        vocab_size=len(vocab),
        num_classes=loaded.num_classes,
        **dataclasses.asdict(preset.dropouts),
    )
    hier = model_cfg.hierarchical
    corpus = data_lib.encode_corpus(loaded.splits["train"], vocab, hierarchical=hier)
    batches = data_lib.make_batches(
        corpus, batch_config(train_cfg), hierarchical=hier, train=True, seed=train_cfg.seed
    )
    jax_batches = bucket_batches(batches, train_cfg.shape_ladder_ratio)
    pack = None
    if hier:
        gap = packing_gap(model_cfg)
        pack = data_lib.pack_config_for(corpus, train_cfg.batch_size, gap=gap)
    placed = [loop.place_batch(b, None, pack) for b in jax_batches]
    shapes_per_epoch = len({_jax_key(p[0]) for p in placed})

    model = make_model(model_cfg, rngs=nnx.Rngs(train_cfg.seed))
    opt = make_optimizer(model, train_cfg)
    tmodel = TorchClassifier(model)
    tstep = make_step(tmodel, train_cfg)

    def torch_args(i):
        b = batches[i]
        real = np.asarray(b.doc_index) >= 0
        return b.tokens[real], b.labels[real]

    def jax_eval_loss(i):
        tokens, labels, w, _ = placed[i]
        loss_sum, _, _ = loop.eval_step(model, tokens, labels, w)
        return float(loss_sum) / float(np.sum(w))

    print(f"{arch}: {len(batches)} batches per epoch, {shapes_per_epoch} JAX shapes", flush=True)
    model.eval()
    ok = _check("first-batch loss", jax_eval_loss(0), eval_loss(tmodel, *torch_args(0)), LOSS_RTOL)
    loop.train_step(model, opt, *placed[0][:3])  # one step each, dropout off
    tmodel.eval()
    tstep(*torch_args(0))
    ok &= _check("loss after one step", jax_eval_loss(0), eval_loss(tmodel, *torch_args(0)), STEP_RTOL)  # fmt: skip

    model.train()
    tmodel.train()
    picks = np.linspace(0, len(batches) - 1, sample).round().astype(int)

    def jax_step(i):
        tokens, labels, w, _ = loop.place_batch(jax_batches[i], None, pack)
        jax.block_until_ready(loop.train_step(model, opt, tokens, labels, w))

    first = {int(i): _timed(lambda i=i: jax_step(i)) for i in picks}
    tstep(*torch_args(int(picks[0])))  # PyTorch warm-up (allocator, thread pool)
    jax_rounds, torch_rounds, cpu_ratios = [], [], []
    per_batch = {int(i): [] for i in picks}
    for r in range(repeats):
        order = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        totals = {"jax": 0.0, "torch": 0.0}
        cpu = {"jax": 0.0, "torch": 0.0}
        for i in picks:
            for who in order:
                if who == "jax":
                    t, c = _timed_both(lambda i=i: jax_step(int(i)))
                    per_batch[int(i)].append(t)
                else:
                    t, c = _timed_both(lambda i=i: tstep(*torch_args(int(i))))
                totals[who] += t
                cpu[who] += c
        jax_rounds.append(totals["jax"] / len(picks))
        torch_rounds.append(totals["torch"] / len(picks))
        cpu_ratios.append(cpu["torch"] / max(cpu["jax"], 1e-9))
    compile_s = [first[i] - statistics.median(per_batch[i]) for i in first]
    jax_min, jax_med = _stats(jax_rounds)
    torch_min, torch_med = _stats(torch_rounds)
    per_shape = statistics.mean(compile_s)
    print(
        f"  steps (ms, min / median): JAX {1e3 * jax_min:.0f} / {1e3 * jax_med:.0f}, PyTorch "
        f"{1e3 * torch_min:.0f} / {1e3 * torch_med:.0f}; compile {per_shape:.1f} s per shape; "
        f"CPU-time ratio {statistics.median(cpu_ratios):.2f}",
        flush=True,
    )
    return {
        "arch": arch,
        "shapes": sorted({"x".join(map(str, _jax_key(placed[i][0])[0])) for i in picks}),
        "jax_min": jax_min,
        "jax_median": jax_med,
        "torch_min": torch_min,
        "torch_median": torch_med,
        "ratio": torch_med / jax_med,
        "ratio_min": torch_min / jax_min,
        "cpu_ratio": statistics.median(cpu_ratios),
        "compile_per_shape": per_shape,
        "shapes_per_epoch": shapes_per_epoch,
        "compile_per_epoch": per_shape * shapes_per_epoch,
        "losses_agree": bool(ok),
        "torch_threads": torch.get_num_threads(),
    }


def run(
    data_cfg, archs, *, repeats: int, sample: int, lr: float | None, torch_threads: int = 0
) -> list[dict]:
    """Compares every architecture in `archs`; prints a table and a final JSON line.

    torch_threads: PyTorch's intra-op threads (0 = its default, one per core).
    """
    import torch

    from attn_interp import data as data_lib

    if torch_threads:
        torch.set_num_threads(torch_threads)
    if repeats < 10:
        raise ValueError(f"--repeats={repeats}: use at least 10 timed rounds.")
    load_before = os.getloadavg()
    loaded = data_lib.load_splits(data_cfg)
    vocab = data_lib.build_vocabulary(loaded, min_count=5)
    rows = [compare_arch(loaded, vocab, a, repeats=repeats, sample=sample, lr=lr) for a in archs]
    load_after = os.getloadavg()
    print(f"\nload average (1/5/15 min) before {load_before}, after {load_after}")
    print(
        "| model | JAX step ms (min / median) | PyTorch step ms (min / median) | PyTorch / JAX "
        "(median; min) | CPU time PyTorch / JAX | JAX compile s per shape | shapes per epoch | "
        "compile s per epoch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arch']} | {1e3 * r['jax_min']:.0f} / {1e3 * r['jax_median']:.0f} | "
            f"{1e3 * r['torch_min']:.0f} / {1e3 * r['torch_median']:.0f} | "
            f"**{r['ratio']:.2f}×**; {r['ratio_min']:.2f}× | {r['cpu_ratio']:.2f}× | "
            f"{r['compile_per_shape']:.1f} | "
            f"{r['shapes_per_epoch']} | {r['compile_per_epoch']:.0f} |"
        )
    summary = {f"{r['arch']}_jax_vs_torch": round(r["ratio"], 3) for r in rows}
    for r in rows:
        summary[f"{r['arch']}_compile_seconds_per_shape"] = round(r["compile_per_shape"], 2)
        summary[f"{r['arch']}_compile_seconds_per_epoch"] = round(r["compile_per_epoch"], 1)
        summary[f"{r['arch']}_losses_agree"] = r["losses_agree"]
        summary[f"{r['arch']}_cpu_time_ratio"] = round(r["cpu_ratio"], 3)
    summary["load_average_before_after"] = [load_before[0], load_after[0]]
    summary["torch_threads"] = rows[0]["torch_threads"] if rows else None
    print(json.dumps(summary, sort_keys=True))
    return rows
