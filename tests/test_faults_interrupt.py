"""SIGKILL the training and erasure launchers mid-run, re-run the same command, and compare with an
uninterrupted run: same final metrics and best parameters, same erasure results (no document lost
or counted twice)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from absl import flags
from flax import nnx
from helpers import assert_same_erasure_results

import attn_interp
from attn_interp.erasure import ErasureConfig
from attn_interp.erasure import evaluate as ev
from attn_interp.erasure.results import to_flat
from attn_interp.train.run import RunFolderError, load_run
from experiments import erasure as erasure_launcher
from experiments import train as train_launcher

pytestmark = pytest.mark.faults

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORDS = {
    "food": "bread soup salt cook meal".split(),
    "sport": "ball goal team score match".split(),
    "tech": "code chip disk wifi phone".split(),
}


def _load_flat(out_dir):
    """(results as the flat results.npz dict the assertions index, summary.json)."""
    results, summary = ev.load_erasure_results(out_dir)
    return to_flat(results), summary


def _write_split(path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = sorted(_WORDS)
    with open(path, "w") as f:
        for i in range(n):
            label = names[i % 3]
            sentences = []
            for _ in range(int(rng.integers(1, 4))):
                words = [*rng.choice(_WORDS[label], int(rng.integers(2, 6))), names[(i + 1) % 3]]
                sentences.append(" ".join(rng.permutation(words)).capitalize() + ".")
            f.write(json.dumps({"text": " ".join(sentences), "label": label}) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault_data")
    for split, n, seed in (("train", 48, 0), ("validation", 12, 1), ("test", 15, 2)):
        _write_split(root / f"{split}.jsonl", n, seed)
    return root


def _train_argv(workdir, root) -> list[str]:
    return [
        f"--workdir={workdir}",
        "--model=flan_conv",
        "--dataset=local",
        f"--local_train={root / 'train.jsonl'}",
        f"--local_validation={root / 'validation.jsonl'}",
        f"--local_test={root / 'test.jsonl'}",
        "--min_count=1",
        "--embed_dim=8",
        "--hidden=4",
        "--epochs=3",
        "--batch_size=8",
        "--learning_rate=0.01",
        "--save_every_steps=3",
        "--seed=5",
        "--noprogress",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    env["PYTHONPATH"] = _REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_cli(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", module, *argv]
    proc = subprocess.run(cmd, cwd=_REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _kill_when(module: str, argv: list[str], ready, timeout: float = 180.0) -> None:
    """Starts `python -m module argv`, SIGKILLs it as soon as `ready()` is true (polled)."""
    cmd = [sys.executable, "-m", module, *argv]
    proc = subprocess.Popen(
        cmd, cwd=_REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(
                    f"{module} exited (rc {proc.returncode}) before the kill point:\n"
                    + proc.stderr.read()[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{module} reached no kill point within {timeout}s")
            time.sleep(0.02)
        assert proc.poll() is None, f"{module} finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _steps(folder) -> list[int]:
    if not os.path.isdir(folder):
        return []
    return sorted(int(p) for p in os.listdir(folder) if p.isdigit())


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    """The uninterrupted run (in-process, same flags as the CLI runs)."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    fv = flags.FlagValues()
    train_launcher.define_flags(fv)
    fv(["train", *_train_argv(workdir, data)])
    final = train_launcher.run(fv)
    assert final["resumed_from_step"] is None
    return str(workdir), final


def test_killed_training_resumes_to_the_uninterrupted_result(data, reference_run, tmp_path):
    ref_dir, ref_final = reference_run
    workdir = tmp_path / "killed"
    argv = _train_argv(workdir, data)
    latest = workdir / "checkpoints" / "latest"
    # Kill after the first saved checkpoint, well before the last step.
    _kill_when("experiments.train", argv, lambda: bool(_steps(latest)))
    assert not (workdir / "final.json").exists()
    killed_at = _steps(latest)[-1]
    assert 0 < killed_at < ref_final["steps"]

    _run_cli("experiments.train", argv)
    final = json.loads((workdir / "final.json").read_text())
    assert final["resumed_from_step"] is not None and final["resumed_from_step"] >= killed_at
    for key in ("test_accuracy", "validation_accuracy", "test_loss", "steps", "best_epoch"):
        assert final[key] == ref_final[key], key
    got, want = load_run(str(workdir)), load_run(ref_dir)
    for a, b in zip(_params(got.model), _params(want.model), strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = (workdir / "metrics.jsonl").read_text().splitlines()
    ref_metrics = open(os.path.join(ref_dir, "metrics.jsonl")).read().splitlines()
    assert [json.loads(x)["epoch"] for x in metrics] == [1, 2, 3]  # no duplicated epoch lines
    for a, b in zip(metrics, ref_metrics, strict=True):
        ra, rb = json.loads(a), json.loads(b)
        assert ra["validation_accuracy"] == rb["validation_accuracy"]
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-6)


def test_killed_erasure_resumes_from_completed_shards(reference_run, tmp_path):
    workdir, _ = reference_run
    out = tmp_path / "erasure"
    argv = [
        f"--workdir={workdir}",
        f"--out_dir={out}",
        "--shard_docs=3",
        "--num_random=2",
        "--noprogress",
    ]
    shards = out / "shards"

    def a_shard_done():
        return shards.is_dir() and any(p.endswith(".npz") for p in os.listdir(shards))

    _kill_when("experiments.erasure", argv, a_shard_done)
    assert not (out / "results.npz").exists()
    done_before = {
        p: os.stat(shards / p).st_mtime_ns for p in os.listdir(shards) if p.endswith(".npz")
    }
    _run_cli("experiments.erasure", argv)
    for name, mtime in done_before.items():  # finished shards were reused, not recomputed
        assert os.stat(shards / name).st_mtime_ns == mtime
    assert all(p.endswith(".npz") for p in os.listdir(shards))  # no temporary files left behind

    # The uninterrupted reference goes through the same launcher (same device mesh), in-process.
    ref_out = str(tmp_path / "ref")
    fv = flags.FlagValues()
    erasure_launcher.define_flags(fv)
    fv(["erasure", *[x for x in argv if not x.startswith("--out_dir")], f"--out_dir={ref_out}"])
    erasure_launcher.run(fv)
    got, _ = _load_flat(str(out))
    _, want_summary = assert_same_erasure_results(str(out), ref_out)
    n_docs = want_summary["model"]["documents"]
    np.testing.assert_array_equal(got["doc_id"], np.arange(n_docs))  # none lost, none twice


def test_data_changed_since_training_is_refused(data, reference_run, tmp_path):
    workdir, _ = reference_run
    new_data = tmp_path / "data"
    new_data.mkdir()
    for split in ("train", "validation", "test"):
        text = (data / f"{split}.jsonl").read_text()
        if split == "test":  # one label changed after training
            text = text.replace('"label": "food"', '"label": "tech"', 1)
        (new_data / f"{split}.jsonl").write_text(text)
    moved = tmp_path / "run"
    shutil.copytree(workdir, moved)
    config = json.loads((moved / "config.json").read_text())
    assert set(config["data_sha256"]) == {"train", "validation", "test"}
    assert config["package_version"] == attn_interp.__version__
    for split in ("train", "validation", "test"):
        config["data"][f"local_{split}"] = str(new_data / f"{split}.jsonl")
    (moved / "config.json").write_text(json.dumps(config))

    with pytest.raises(ev.ManifestMismatchError, match="changed since training.*retrain"):
        ev.evaluate_run(str(moved), ErasureConfig(num_random=2), progress=False)
    assert not (moved / "erasure" / "results.npz").exists()
    fv = flags.FlagValues()
    train_launcher.define_flags(fv)
    fv(["train", *_train_argv(moved, new_data)])
    with pytest.raises(RunFolderError, match=r"data_sha256\.test.*documents or labels changed"):
        train_launcher.run(fv)
