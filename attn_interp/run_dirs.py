"""The one owner of run-folder layouts: file names, reading the records, "same settings?" checks.

Training run folder (`RunDir`, `experiments.train --workdir`):
  config.json          model / train / data configs, class names, vocabulary settings, data
                       fingerprints (`DATA_SHA_KEY`)
  vocab.json           the vocabulary (`attn_interp.data.Vocabulary.save`)
  checkpoints/         orbax: latest (resume) and best (by validation accuracy)
  metrics.jsonl        one line per epoch
  training_curves.png  loss / accuracy / learning rate per epoch
  final.json           test metrics of the best model, timings, throughput
  erasure/             the default `ErasureDir` of the run

Erasure output folder (`ErasureDir`, `attn_interp.erasure.evaluate_run`):
  manifest.json     settings, run identity, checkpoint step, data fingerprint, shard checksums
  shards/           one .npz per finished shard (resume)
  results.npz       every per-instance array, merged
  summary.json      aggregate statistics (Tables 2-4, the Q10 count of
                    docs/paper_notes.md, throughput)
  documents.jsonl   the items of each erased document (for the example figures)
  *.csv             the original code's CSVs (`attn_interp.erasure.outputs`)

Follow-up output folder (`FollowupDir`, `attn_interp.followups.stage.evaluate_followups`):
  manifest.json, shards/, results.npz, summary.json as above; followups.csv

Job folder (`JobDir`, `experiments.reproduce --workdir`):
  runs/NAME/ARCH       one training run folder per dataset and architecture
  seeds/NAME/ARCH      the same with another seed (the follow-ups' "other seed" baseline)
  dataset_stats/NAME.json, report/

Both records are compared the same way (`attn_interp.records.record_differences`): a reused
folder must match the settings and data that are asked for now.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from attn_interp.data.fingerprint import record_digest
from attn_interp.records import record_differences

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
FINAL_FILE = "final.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
CHECKPOINT_DIR = "checkpoints"
ERASURE_DIR = "erasure"
DATA_SHA_KEY = "data_sha256"  # config.json: split name -> `Split.fingerprint()` at training

MANIFEST_FILE = "manifest.json"
DOCUMENTS_FILE = "documents.jsonl"
SHARD_DIR = "shards"
RESULTS_FILE = "results.npz"
SUMMARY_FILE = "summary.json"
FOLLOWUPS_DIR = "followups"
FOLLOWUPS_CSV_FILE = "followups.csv"

RUNS_DIR = "runs"
SEEDS_DIR = "seeds"
DATASET_STATS_DIR = "dataset_stats"
REPORT_DIR = "report"

_VOLATILE_TRAIN_FIELDS = ("progress",)  # may change between a run and its resumption
_UNSET_IF_NONE = ("embeddings_path", "word2vec", "embeddings_corpus")
_VOLATILE_RUN_FIELDS = ("package_version",)  # recorded, but a newer version may resume a run


_RETRAIN = "delete the run folder or train into a fresh --workdir"
_RERUN = "pass overwrite=True (--overwrite) to start over"


class RunFolderError(ValueError):
    """A run folder is missing, incomplete, or belongs to another model or configuration."""


def _read_json(path: str, error: type[Exception], fix: str) -> dict[str, Any] | None:
    """The JSON object in `path`, None if there is no such file; `error` (saying `fix`) if it is
    unreadable."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise error(f"{path} is unreadable ({type(err).__name__}: {err}); {fix}.") from err


def stable_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A config.json record without the fields that may change between a run and its
    resumption, with config fields added since it was written read as their defaults."""
    from attn_interp.data import DataConfig
    from attn_interp.train.config import TrainConfig
    from attn_interp.train.serialize import config_from_json, config_to_json

    rec = json.loads(json.dumps(record))
    if isinstance(rec.get("data"), dict):  # DataConfig fields added since read as defaults
        rec["data"] = config_to_json(config_from_json(DataConfig, rec["data"]))
    if isinstance(rec.get("train"), dict):  # likewise TrainConfig fields (embeddings)
        rec["train"] = config_to_json(config_from_json(TrainConfig, rec["train"]))
    for k in _UNSET_IF_NONE:  # run keys added since (None: a random-init run)
        if rec.get(k, 0) is None:
            rec.pop(k)
    for k in _VOLATILE_TRAIN_FIELDS:
        rec.get("train", {}).pop(k, None)
    for k in _VOLATILE_RUN_FIELDS:
        rec.pop(k, None)
    return rec


@dataclasses.dataclass(frozen=True)
class _Folder:
    """A folder of named files. `path` is made absolute."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.path.abspath(os.fspath(self.path)))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


@dataclasses.dataclass(frozen=True)
class _ResultsDir(_Folder):
    """The output folder of a stage whose results are keyed by a manifest: manifest.json,
    shards/ (resume), results.npz, summary.json (written last)."""

    @property
    def manifest_path(self) -> str:
        return self.file(MANIFEST_FILE)

    @property
    def shard_dir(self) -> str:
        return self.file(SHARD_DIR)

    @property
    def results_path(self) -> str:
        return self.file(RESULTS_FILE)

    @property
    def summary_path(self) -> str:
        return self.file(SUMMARY_FILE)

    def shard_path(self, s: int) -> str:
        return os.path.join(self.shard_dir, f"shard_{s:05d}.npz")

    def manifest(self) -> dict[str, Any] | None:
        """manifest.json's content; None before the stage wrote it."""
        return _read_json(self.manifest_path, ValueError, _RERUN)

    def is_finished(self) -> bool:
        """summary.json is written last: its presence means the results are complete."""
        return os.path.isfile(self.summary_path)

    def differences(self, want: Mapping[str, Any]) -> list[str] | None:
        """How the manifest's entries named in `want` differ from it; None without a manifest."""
        manifest = self.manifest()
        if manifest is None:
            return None
        return record_differences({k: manifest.get(k) for k in want}, want)


@dataclasses.dataclass(frozen=True)
class RunDir(_Folder):
    """A training run folder. `path` is made absolute."""

    @property
    def config_path(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def vocab_path(self) -> str:
        return self.file(VOCAB_FILE)

    @property
    def final_path(self) -> str:
        return self.file(FINAL_FILE)

    @property
    def checkpoints_path(self) -> str:
        return self.file(CHECKPOINT_DIR)

    def erasure(self, out_dir: str | None = None) -> ErasureDir:
        """The erasure output folder of this run (default RUN/erasure)."""
        return ErasureDir(out_dir or self.file(ERASURE_DIR))

    def followups(self, out_dir: str | None = None) -> FollowupDir:
        """The follow-up output folder of this run (default RUN/followups)."""
        return FollowupDir(out_dir or self.file(FOLLOWUPS_DIR))

    def record(self) -> dict[str, Any] | None:
        """config.json's content; None before the first training call wrote it."""
        return _read_json(self.config_path, RunFolderError, _RETRAIN)

    def final(self) -> dict[str, Any] | None:
        """final.json's content; None while training has not finished."""
        return _read_json(self.final_path, RunFolderError, _RETRAIN)

    def is_finished(self) -> bool:
        return os.path.isfile(self.final_path)

    def checkpoint_step(self, which: str) -> int | None:
        """Step of the newest `which` ("best" or "latest") checkpoint; None if there is none."""
        from attn_interp.train.checkpoint import RunCheckpoints

        ckpt = RunCheckpoints(self.path)
        try:
            return ckpt.latest_step(which)
        finally:
            ckpt.close()

    def identity(self) -> str:
        """sha256 of config.json's stable record (configs, class names, data fingerprints): what
        results derived from the run are keyed by."""
        record = self.record()
        if record is None:
            raise RunFolderError(f"{self.path} is not a training run folder (no {CONFIG_FILE}).")
        return record_digest(stable_record(record))

    def differences(self, new: Mapping[str, Any]) -> list[str] | None:
        """How the recorded run differs from the record `new` ("key: old -> new" lines).

        Returns None when the folder holds no run yet, [] when it holds a run of the same
        settings and data (it may be resumed or reused). Fields missing from `new` (e.g.
        model.vocab_size before the vocabulary is built) are not compared.
        """
        old = self.record()
        if old is None:
            return None
        old_s, new_s = stable_record(old), stable_record(new)
        if DATA_SHA_KEY not in old_s:  # a run folder written before fingerprints were recorded
            new_s.pop(DATA_SHA_KEY, None)
        if "vocab_size" not in new_s.get("model", {}):
            old_s.get("model", {}).pop("vocab_size", None)
        return record_differences(old_s, new_s)

    def check_same(self, new: Mapping[str, Any]) -> None:
        """Raises RunFolderError unless the folder is empty or holds a run of `new`'s settings."""
        diffs = self.differences(new)
        if diffs:
            changed_data = any(d.startswith(DATA_SHA_KEY + ".") for d in diffs)
            raise RunFolderError(
                f"{self.path} already holds a run with a different configuration "
                f"({'; '.join(diffs[:8])}). "
                + (
                    "The dataset's documents or labels changed since that run was trained: "
                    "restore the original data files, or train on the new data into a fresh "
                    "--workdir."
                    if changed_data
                    else "Use a fresh --workdir, or repeat the original flags to resume that run."
                )
            )


@dataclasses.dataclass(frozen=True)
class ErasureDir(_ResultsDir):
    """An erasure output folder. `path` is made absolute."""

    @property
    def documents_path(self) -> str:
        return self.file(DOCUMENTS_FILE)

    def check_run(self, run: RunDir) -> None:
        """Refuses results whose manifest names another trained run than `run` holds."""
        if (self.manifest() or {}).get("run_sha256") is None:  # none yet, or an older manifest
            return
        diffs = self.differences({"run_sha256": run.identity()})
        if diffs:
            raise ValueError(
                f"{self.path} holds erasure results of another trained run than {run.path} "
                "(other settings or data): re-run the erasure tests on this run (python -m "
                "experiments.erasure --workdir=RUN --overwrite)."
            )


@dataclasses.dataclass(frozen=True)
class FollowupDir(_ResultsDir):
    """A follow-up output folder. `path` is made absolute."""

    @property
    def csv_path(self) -> str:
        return self.file(FOLLOWUPS_CSV_FILE)


@dataclasses.dataclass(frozen=True)
class JobDir(_Folder):
    """The folder of a whole job (`experiments.reproduce --workdir`). `path` is made absolute."""

    @property
    def runs_path(self) -> str:
        return self.file(RUNS_DIR)

    @property
    def report_path(self) -> str:
        return self.file(REPORT_DIR)

    def run(self, dataset: str, arch: str) -> RunDir:
        """The training run of `arch` on the corpus `dataset`."""
        return RunDir(os.path.join(self.runs_path, dataset, arch))

    def other_seed_run(self, dataset: str, arch: str) -> RunDir:
        """The run of `arch` on `dataset` with another seed."""
        return RunDir(os.path.join(self.file(SEEDS_DIR), dataset, arch))

    @property
    def dataset_stats_dir(self) -> str:
        return self.file(DATASET_STATS_DIR)

    def dataset_stats_path(self, dataset: str) -> str:
        return os.path.join(self.dataset_stats_dir, f"{dataset}.json")
