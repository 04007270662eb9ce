"""Train every architecture on one dataset and tabulate accuracy, time and throughput; or time
training steps side by side with the same models in PyTorch.

    python -m experiments.benchmark_training --dataset=yahoo_answers_10k --epochs=3 \
        --workdir=/tmp/bench_train
    python -m experiments.benchmark_training --compare_torch          # needs the `bench` extra

Each architecture uses the paper's preset (paper_notes.md §1.8) except for the flags given here
(`--epochs` caps the epoch count to fit a time budget; early stopping still applies). Prints one
row per model and, last, one JSON line with all final.json records. Throughput is documents (and
non-padding tokens) per second of training steps, compilation included.

`--compare_torch` (see `experiments.compare_torch`): per architecture, the same initial parameters
in both frameworks, the same training batches of the dataset, first-batch losses compared, then
steady-state training steps timed in turns and JAX's compilation timed separately. Last line: JSON
with `<arch>_jax_vs_torch` = PyTorch step time / JAX step time (median over repeats).
"""

from __future__ import annotations

import dataclasses
import json
import logging as std_logging
import os
import time

from absl import app, flags, logging

from attn_interp.data import DataConfig
from attn_interp.models import ARCHITECTURES
from attn_interp.train.config import paper_preset
from attn_interp.train.run import train_and_evaluate

_DATASET = flags.DEFINE_string("dataset", "yahoo_answers_10k", "Dataset name.")
_MODELS = flags.DEFINE_list("models", list(ARCHITECTURES), "Architectures to train.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/attn_interp_bench_train", "Base run folder.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Cap on epochs (default: preset).")
_MAX_DOCS = flags.DEFINE_integer("max_docs_per_split", None, "Smoke runs: docs per split.")
_EMBEDDINGS = flags.DEFINE_string(
    "embeddings", None, "random, word2vec or a word-vector text file (default: preset)."
)
_LR = flags.DEFINE_float("learning_rate", None, "Override the preset learning rate.")
_PROGRESS = flags.DEFINE_bool("progress", False, "Show tqdm bars.")
_COMPARE = flags.DEFINE_bool("compare_torch", False, "Time training steps against PyTorch.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "--compare_torch: timed rounds (>= 10).")
_SAMPLE = flags.DEFINE_integer("sample_batches", 6, "--compare_torch: batches per round.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "--compare_torch: PyTorch intra-op threads (0 = one per core)."
)


def main(argv: list[str]) -> None:
    del argv
    std_logging.getLogger("absl").addFilter(
        lambda r: r.levelno >= logging.WARNING or "orbax" not in r.pathname
    )
    data_cfg = DataConfig(dataset=_DATASET.value, max_docs_per_split=_MAX_DOCS.value)
    if _COMPARE.value:
        from experiments import compare_torch

        compare_torch.run(
            data_cfg,
            _MODELS.value,
            repeats=_REPEATS.value,
            sample=_SAMPLE.value,
            lr=_LR.value,
            torch_threads=_TORCH_THREADS.value,
        )
        return
    rows = []
    for arch in _MODELS.value:
        preset = paper_preset(_DATASET.value, arch)
        over = {"progress": _PROGRESS.value}
        if _EPOCHS.value:
            over["epochs"] = min(_EPOCHS.value, preset.train.epochs)
        if _LR.value:
            over["learning_rate"] = _LR.value
        if _EMBEDDINGS.value:
            over["embeddings"] = _EMBEDDINGS.value
        train_cfg = dataclasses.replace(preset.train, **over)
        start = time.perf_counter()
        final = train_and_evaluate(
            data_cfg,
            train_cfg,
            os.path.join(_WORKDIR.value, arch),
            arch=arch,
            model_overrides=dataclasses.asdict(preset.dropouts),
        )
        final["wall_seconds"] = time.perf_counter() - start
        final["epoch_cap"] = train_cfg.epochs
        rows.append(final)
        print(
            f"{arch:11s} test {final['test_accuracy']:.4f} val {final['validation_accuracy']:.4f} "
            f"epochs {final['epochs']:2d} (best {final['best_epoch']}) wall "
            f"{final['wall_seconds']:7.1f}s docs/s {final['docs_per_second']:7.1f} tokens/s "
            f"{final['tokens_per_second']:9.0f}",
            flush=True,
        )
    print("\n| model | test acc | val acc | epochs (best) | wall s | docs/s | tokens/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['test_accuracy']:.4f} | {r['validation_accuracy']:.4f} | "
            f"{r['epochs']} ({r['best_epoch']}) | {r['wall_seconds']:.0f} | "
            f"{r['docs_per_second']:.0f} | {r['tokens_per_second']:.0f} |"
        )
    print(json.dumps({"dataset": _DATASET.value, "runs": rows}, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
