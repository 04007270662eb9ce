"""RunDir / ErasureDir: file names, record reading and the "same settings?" checks."""

from __future__ import annotations

import json
import os

import pytest

from attn_interp.run_dirs import ErasureDir, FollowupDir, JobDir, RunDir, RunFolderError


def _record(lr: float = 0.1, data: str = "abc") -> dict:
    return {
        "model": {"arch": "flan_rnn", "vocab_size": 7},
        "train": {"learning_rate": lr},
        "data_sha256": {"test": data},
        "package_version": "0",
    }


def _write(path: str, obj: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def test_empty_folder_has_no_run(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    assert run.record() is None and run.final() is None and not run.is_finished()
    assert run.differences(_record()) is None
    run.check_same(_record())  # nothing there: any settings are accepted
    with pytest.raises(RunFolderError, match="not a training run folder"):
        run.identity()


def test_same_and_other_settings(tmp_path):
    run = RunDir(str(tmp_path))
    _write(run.config_path, _record())
    assert run.differences(_record()) == []
    newer = {**_record(), "package_version": "1"}  # volatile: a newer version may resume
    assert run.differences(newer) == []
    assert run.identity() == RunDir(str(tmp_path)).identity()
    assert run.differences(_record(lr=0.2)) == ["train.learning_rate: 0.1 -> 0.2"]
    with pytest.raises(RunFolderError, match="learning_rate.*repeat the original flags"):
        run.check_same(_record(lr=0.2))
    with pytest.raises(RunFolderError, match=r"data_sha256\.test.*documents or labels changed"):
        run.check_same(_record(data="xyz"))
    without_vocab = _record(lr=0.1)
    del without_vocab["model"]["vocab_size"]  # not built yet: not compared
    assert run.differences(without_vocab) == []


def test_unreadable_config_is_one_line_error(tmp_path):
    run = RunDir(str(tmp_path))
    with open(run.config_path, "w") as f:
        f.write("{not json")
    with pytest.raises(RunFolderError, match="config.json is unreadable"):
        run.record()


def test_erasure_dir_names_and_run_check(tmp_path):
    run = RunDir(str(tmp_path))
    _write(run.config_path, _record())
    folder = run.erasure()
    assert folder.path == os.path.join(run.path, "erasure")
    assert os.path.basename(folder.shard_path(3)) == "shard_00003.npz"
    assert folder.manifest() is None and folder.differences({"split": "test"}) is None
    folder.check_run(run)  # no manifest yet
    _write(folder.manifest_path, {"split": "test"})
    folder.check_run(run)  # a manifest that predates run identities
    assert folder.differences({"split": "test"}) == []
    assert folder.differences({"split": "validation"}) == ["split: 'test' -> 'validation'"]
    _write(folder.manifest_path, {"run_sha256": run.identity()})
    folder.check_run(run)
    _write(folder.manifest_path, {"run_sha256": "0" * 64})
    with pytest.raises(ValueError, match="another trained run"):
        folder.check_run(run)
    assert not folder.is_finished()
    _write(folder.summary_path, {})
    assert folder.is_finished()
    assert ErasureDir(str(tmp_path / "x")).path == os.path.abspath(str(tmp_path / "x"))


def test_followup_and_job_dir_layout(tmp_path):
    """The follow-up folder shares the erasure folder's manifest, shards and completion marker;
    the job folder names every run, the other-seed runs and the dataset statistics."""
    job = JobDir(str(tmp_path / "job"))
    run = job.run("yahoo", "han_rnn")
    assert run.path == os.path.join(job.path, "runs", "yahoo", "han_rnn")
    assert job.other_seed_run("yahoo", "han_rnn").path == os.path.join(
        job.path, "seeds", "yahoo", "han_rnn"
    )
    assert job.dataset_stats_path("yahoo") == os.path.join(job.dataset_stats_dir, "yahoo.json")
    assert job.report_path == os.path.join(job.path, "report")
    folder = run.followups()
    assert isinstance(folder, FollowupDir)
    assert folder.path == os.path.join(run.path, "followups")
    assert os.path.basename(folder.csv_path) == "followups.csv"
    assert os.path.basename(folder.shard_path(0)) == "shard_00000.npz"
    assert folder.manifest() is None and not folder.is_finished()
    _write(folder.manifest_path, {"revision": 1})
    assert folder.differences({"revision": 2}) == ["revision: 1 -> 2"]
    _write(folder.summary_path, {})
    assert folder.is_finished() and run.followups(str(tmp_path / "f")).path.endswith("f")
