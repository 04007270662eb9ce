"""Launcher smoke run on a tiny local dataset, resumption of a finished run, and load_run errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from absl import flags

from attn_interp import data as data_lib
from attn_interp.train import loop
from attn_interp.train.checkpoint import CheckpointError
from attn_interp.train.run import RunFolderError, load_run
from experiments import train as launcher

_WORDS = {
    "sport": ["ball", "goal", "team", "score", "match"],
    "food": ["bread", "soup", "salt", "cook", "meal"],
    "tech": ["code", "chip", "disk", "wifi", "phone"],
}


def _write_split(path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = sorted(_WORDS)
    with open(path, "w") as f:
        for i in range(n):
            label = names[i % len(names)]
            sentences = []
            for _ in range(int(rng.integers(1, 4))):
                own = rng.choice(_WORDS[label], int(rng.integers(2, 6)))
                other = rng.choice(_WORDS[names[(i + 1) % 3]], 1)
                words = list(rng.permutation(np.concatenate([own, other])))
                sentences.append(" ".join(words).capitalize() + ".")
            f.write(json.dumps({"text": " ".join(sentences), "label": label}) + "\n")


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_data")
    paths = {}
    for split, n, seed in (("train", 36, 0), ("validation", 12, 1), ("test", 15, 2)):
        paths[split] = str(root / f"{split}.jsonl")
        _write_split(paths[split], n, seed)
    return paths


def _argv(workdir, files, model="han_conv", *extra):
    return [
        "train",
        f"--workdir={workdir}",
        f"--model={model}",
        "--dataset=local",
        f"--local_train={files['train']}",
        f"--local_validation={files['validation']}",
        f"--local_test={files['test']}",
        "--min_count=1",
        "--embed_dim=8",
        "--hidden=4",
        "--epochs=2",
        "--batch_size=8",
        "--learning_rate=0.01",
        "--save_every_steps=3",
        "--noprogress",
        *extra,
    ]


def _launch(argv):
    fv = flags.FlagValues()
    launcher.define_flags(fv)
    fv(argv)
    return launcher.run(fv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset_files):
    workdir = tmp_path_factory.mktemp("run") / "han_conv"
    flagfile = workdir.parent / "exp.flags"
    flagfile.write_text("--epochs=1\n--seed=3\n")
    # --flagfile works and later flags override it (--epochs=2 in _argv comes after).
    argv = _argv(workdir, dataset_files)
    final = _launch([argv[0], f"--flagfile={flagfile}", *argv[1:]])
    return str(workdir), final


def test_launcher_writes_run_files(trained, dataset_files):
    workdir, final = trained
    on_disk = json.loads(open(os.path.join(workdir, "final.json")).read())
    assert on_disk == json.loads(json.dumps(final))  # floats round-trip exactly
    for key in ("test_accuracy", "validation_accuracy", "model", "dataset", "epochs"):
        assert key in final
    for key in ("train_seconds", "params", "docs_per_second", "tokens_per_second"):
        assert final[key] > 0
    assert final["model"] == "han_conv" and final["dataset"] == "local"
    assert (
        final["epochs"] == 2 and final["test_documents"] == 15
    )  # all test docs (paper_notes.md Q8)
    lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0.0 <= r["validation_accuracy"] <= 1.0 for r in records)
    with open(os.path.join(workdir, "training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    config = json.loads(open(os.path.join(workdir, "config.json")).read())
    assert config["train"]["seed"] == 3 and config["train"]["epochs"] == 2
    assert config["model"]["hidden"] == 4 and config["class_names"] == ["food", "sport", "tech"]


def test_load_run_reproduces_reported_accuracy(trained):
    workdir, final = trained
    run = load_run(workdir)
    assert run.model_config.arch == "han_conv" and run.class_names == ("food", "sport", "tech")
    assert run.model.logit_dropout.deterministic  # eval mode: dropout off
    split = data_lib.load_splits(run.data_config).splits["test"]
    corpus = data_lib.encode_corpus(split, run.vocab, hierarchical=True)
    batches = data_lib.make_batches(corpus, data_lib.BatchConfig(), hierarchical=True, train=False)
    doc_index, preds = loop.predict(run.model, batches)
    accuracy = float(np.mean(preds == split.labels[doc_index]))
    assert len(doc_index) == 15
    assert accuracy == pytest.approx(final["test_accuracy"])
    assert np.array_equal(
        load_run(workdir).model.embed.embedding[...], run.model.embed.embedding[...]
    )
    # the latest checkpoint (which also holds the optimizer state) loads too
    latest = load_run(workdir, which="latest")
    assert latest.which == "latest" and latest.model.logit_dropout.deterministic
    assert latest.meta.get("step", 0) >= run.meta.get("step", 0)


def test_rerun_resumes_and_changed_config_is_refused(trained, dataset_files, tmp_path):
    workdir, final = trained
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    argv = _argv(copy, dataset_files)
    again = _launch([*argv, "--seed=3"])
    assert again["resumed_from_step"] == final["steps"] and again["steps"] == final["steps"]
    assert again["test_accuracy"] == pytest.approx(final["test_accuracy"])
    with pytest.raises(RunFolderError, match="learning_rate"):
        _launch([*argv, "--seed=3", "--learning_rate=0.5"])


def test_resumed_run_says_so_removes_stale_temp_files_and_writes_readable_files(
    trained, dataset_files, tmp_path, caplog
):
    import logging

    workdir, final = trained
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    stale = [copy / ".final.json.a1b2.tmp", copy / ".config.json.c3d4.tmp"]
    for path in stale:
        path.write_text("partial write of a killed run")
    old_umask = os.umask(0o022)
    try:
        with caplog.at_level(logging.INFO):
            again = _launch([*_argv(copy, dataset_files), "--seed=3"])
    finally:
        os.umask(old_umask)
    said = [r.getMessage() for r in caplog.records if "resumed from step" in r.getMessage()]
    assert said == [f"{copy}: resumed from step {final['steps']}"]
    assert again["resumed_from_step"] == final["steps"]
    assert not any(p.exists() for p in stale)
    for name in ("final.json", "config.json"):
        assert os.stat(copy / name).st_mode & 0o777 == 0o644, name


def test_load_run_errors(trained, tmp_path):
    workdir, _ = trained
    with pytest.raises(RunFolderError, match="not a training run folder"):
        load_run(str(tmp_path))
    with pytest.raises(RunFolderError, match="holds a 'han_conv' run, not 'flan_rnn'"):
        load_run(workdir, arch="flan_rnn")
    with pytest.raises(ValueError, match="which="):
        load_run(workdir, which="newest")

    other = tmp_path / "other_model"
    shutil.copytree(workdir, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["hidden"] = 6  # config.json from another model: arrays no longer fit
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not fit.*: checkpoint \(\d+.*, model \(\d+"):
        load_run(str(other))  # names the arrays whose shapes differ, before any orbax read

    corrupt = tmp_path / "corrupt"
    shutil.copytree(workdir, corrupt)
    best = corrupt / "checkpoints" / "best"
    step_dir = next(p for p in best.iterdir() if p.name.isdigit())
    for path in (step_dir / "state").rglob("*"):
        if path.is_file() and "manifest" not in path.name and path.stat().st_size > 0:
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="Checkpoint|checkpoint"):
        load_run(str(corrupt))

    missing = tmp_path / "missing"
    shutil.copytree(workdir, missing)
    shutil.rmtree(missing / "checkpoints" / "best")
    with pytest.raises(CheckpointError, match="No 'best' checkpoint"):
        load_run(str(missing))
