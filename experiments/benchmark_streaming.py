"""Peak host memory of the erasure launcher on large synthetic test sets (streaming check).

    python -m experiments.benchmark_streaming --sizes=25000,100000

For every size N, a child process trains a tiny flan_conv model on 300 short documents, then runs
`evaluate_run` on a test split of N short documents (3-12 words) and reports the peak resident set
size (`resource.getrusage` ru_maxrss) before and during the erasure, next to the size of the
merged results.npz (what an in-memory concatenation of all shards would have to hold). Streaming
means the peak grows with the per-instance arrays only, far slower than results.npz. Prints a
table and, last, one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["25000", "100000"], "Test-set sizes (documents), one child each.")
flags.DEFINE_integer("shard_docs", 4096, "Documents per erasure shard.")
flags.DEFINE_integer("child", 0, "Internal: run one size in this process.")
flags.DEFINE_string("workdir", None, "Where to write the synthetic data and runs (default: tmp).")

WORDS = [f"w{i}" for i in range(60)]


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _write_split(path: str, n: int, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    lengths = rng.integers(3, 13, n)
    with open(path, "w") as f:
        for y, k in zip(labels.tolist(), lengths.tolist(), strict=True):
            own = rng.choice(WORDS[y * 20 : y * 20 + 20], k)
            noise = rng.choice(WORDS, k)
            words = np.where(rng.random(k) < 0.6, own, noise)
            f.write(json.dumps({"text": " ".join(words.tolist()), "label": f"c{y}"}) + "\n")


def _child(n: int, root: str) -> dict:
    from attn_interp.data import DataConfig
    from attn_interp.erasure import ErasureConfig
    from attn_interp.erasure.evaluate import evaluate_run
    from attn_interp.train.config import TrainConfig
    from attn_interp.train.run import train_and_evaluate

    os.makedirs(root, exist_ok=True)
    for name, count, seed in (("train", 300, 1), ("validation", 60, 2), ("test", n, 3)):
        _write_split(os.path.join(root, f"{name}.jsonl"), count, seed)
    data_cfg = DataConfig(
        dataset="local",
        local_train=os.path.join(root, "train.jsonl"),
        local_validation=os.path.join(root, "validation.jsonl"),
        local_test=os.path.join(root, "test.jsonl"),
    )
    train_cfg = TrainConfig(
        epochs=1, batch_size=64, learning_rate=1e-2, save_every_steps=0, progress=False
    )
    workdir = os.path.join(root, "run")
    train_and_evaluate(
        data_cfg,
        train_cfg,
        workdir,
        arch="flan_conv",
        model_overrides={"embed_dim": 8, "hidden": 4},
        min_count=1,
    )
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    out = evaluate_run(
        workdir, ErasureConfig(), shard_docs=_FLAGS.shard_docs, progress=False, overwrite=True
    )
    seconds = time.perf_counter() - start
    rss_peak = _max_rss_mb()
    import numpy as np

    per_instance = items = 0
    with np.load(os.path.join(out, "results.npz"), allow_pickle=False) as f:
        for k in f.files:
            nbytes = f[k].nbytes
            if k.startswith("items/"):
                items += nbytes
            else:
                per_instance += nbytes
    return {
        "documents": n,
        "rss_before_erasure_mb": round(rss_before, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_growth_mb": round(rss_peak - rss_before, 1),
        "results_item_arrays_mb": round(items / 2**20, 1),
        "results_per_instance_mb": round(per_instance / 2**20, 1),
        "erasure_wall_seconds": round(seconds, 1),
    }


def main(argv: list[str]) -> None:
    del argv
    root = os.path.abspath(_FLAGS.workdir or tempfile.mkdtemp(prefix="bench_streaming_"))
    if _FLAGS.child:
        print(json.dumps(_child(_FLAGS.child, os.path.join(root, str(_FLAGS.child)))))
        return
    rows = []
    for size in (int(s) for s in _FLAGS.sizes):
        cmd = [
            sys.executable,
            "-m",
            "experiments.benchmark_streaming",
            f"--child={size}",
            f"--workdir={root}",
            f"--shard_docs={_FLAGS.shard_docs}",
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    header = "documents  rss before MB  rss peak MB  growth MB  item arrays MB  per-instance MB  erasure s"
    print(header)
    for r in rows:
        print(
            f"{r['documents']:>9}  {r['rss_before_erasure_mb']:>13}  {r['rss_peak_mb']:>11}  "
            f"{r['rss_growth_mb']:>9}  {r['results_item_arrays_mb']:>14}  "
            f"{r['results_per_instance_mb']:>15}  {r['erasure_wall_seconds']:>9}"
        )
    import jax

    print(
        json.dumps(
            {"benchmark": "streaming_erasure", "backend": jax.default_backend(), "rows": rows}
        )
    )


if __name__ == "__main__":
    app.run(main)
