r"""The main job: train, run the erasure tests, write the figures, tables and report.

    python -m experiments.reproduce --workdir=/tmp/repro
    python -m experiments.reproduce --workdir=/tmp/repro --models=all --epochs=3
    python -m experiments.reproduce --workdir=/tmp/smoke --smoke \
        --dataset=local --local_path=tiny.csv --models=han_noenc,flan_noenc

Stages per dataset: Table 1 statistics (WORKDIR/dataset_stats/NAME.json); then per model:
training into WORKDIR/runs/NAME/ARCH, the erasure tests on the test split into
WORKDIR/runs/NAME/ARCH/erasure (an interrupted stage resumes); finally WORKDIR/report/report.md
and report.html with every table, figure and per-document view. Every stage is reused only when
it was made from the same inputs: statistics from the same settings and data (sha256 of the
prepared splits), a trained run from the same data, model and training settings, erasure results
from the same erasure settings, engine revision and trained run; otherwise it is redone, with one
log line saying what changed (a changed run folder is deleted and retrained).

Flags: the data flags of `experiments.dataset_stats` (one per `DataConfig` field; `--dataset` is
used when `--datasets` is not given) and the training flags of `experiments.train` (one per
`TrainConfig` field, e.g. --learning_rate, --batch_size, --patience, --epochs, plus --embed_dim,
--hidden, the dropouts, --preset and the word2vec settings), applied to every model. `--smoke`
trains tiny models (embed 16, hidden 8) for one epoch on at most 60 documents per split and
erases at most 40 test documents (about 40 s of CPU time for the two default models; README);
training flags given on the command line still win.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

from absl import app, flags

from attn_interp.io_utils import atomic_write_json, remove_stale_temp_files
from experiments import config_flags, dataset_stats
from experiments.cli import launch

# Architectures trained by default: one HAN and one FLAN, the cheapest pair that covers both
# families on a small CPU (timings in the README's "Training" table). `--models=all` trains all six.
DEFAULT_MODELS = ("han_rnn", "flan_conv")
# Smoke mode's training settings (before the command line's training flags, which win).
SMOKE_SETTINGS = {"epochs": 1, "save_every_steps": 0, "embed_dim": 16, "hidden": 8}
SMOKE_DOCS_PER_SPLIT = 60
SMOKE_TEST_DOCS = 40

config_flags.define_training_flags(flags.FLAGS)  # the flags of experiments.train
flags.adopt_module_key_flags(config_flags)  # --help lists the data and training flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the whole job (required).")
_MODELS = flags.DEFINE_string(
    "models",
    ",".join(DEFAULT_MODELS),
    "Comma-separated architectures ({han,flan}_{rnn,conv,noenc}) or 'all'.",
)
_DATASETS = flags.DEFINE_list(
    "datasets", None, "Comma-separated dataset names; default: the --dataset flag."
)
_SMOKE = flags.DEFINE_bool(
    "smoke", False, "Tiny models, few documents, one epoch (~40 s of CPU time; see README)."
)
_MAX_TEST_DOCS = flags.DEFINE_integer(
    "max_test_docs", None, "Erase only the first N test documents (default: all; smoke: 40)."
)
_NUM_RANDOM = flags.DEFINE_integer("num_random", 5, "Random removal orderings per document.")
_RANDOM_MODE = flags.DEFINE_enum(
    "random_mode",
    "paper",
    ["paper", "code_compatible"],
    "How the random item r is drawn (docs/paper_notes.md Q1).",
)
_FOLLOWUPS = flags.DEFINE_bool(
    "followups",
    True,
    "After erasure, run the follow-up tests (rank agreement, weight baselines, adversarial "
    "attention; docs/followups.md) and write the document explorer.",
)
_FOLLOWUP_EPSILONS = flags.DEFINE_list(
    "followup_epsilons",
    None,
    "Output budgets (TVD) of the adversarial attention, first = headline.",
)
_FOLLOWUP_STEPS = flags.DEFINE_integer("followup_steps", None, "Adam steps of the adversary.")
_FOLLOWUP_RESTARTS = flags.DEFINE_integer("followup_restarts", None, "Adversary restarts.")
_OTHER_SEED_MODELS = flags.DEFINE_list(
    "other_seed_models",
    [],
    "Architectures trained again with seed + 1 (into WORKDIR/seeds/NAME/ARCH) whose attention is "
    "the follow-up tests' 'other seed' baseline.",
)
_POINTS_PER_BIN = flags.DEFINE_integer(
    "points_per_bin",
    None,
    "Figure 3: plot at most N points per 0.005-wide Δα bin (the maximum is kept); default all.",
)


def log(msg: str) -> None:
    """One progress line on stdout."""
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_models(text: str) -> list[str]:
    """'all' or a comma list -> architectures, validated."""
    from attn_interp.models import ARCHITECTURES

    if text.strip() == "all":
        return list(ARCHITECTURES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ARCHITECTURES]
    if bad or not names:
        raise app.UsageError(
            f"--models={text!r}: unknown {bad or 'empty list'}; use 'all' or a comma list of "
            f"{', '.join(ARCHITECTURES)}."
        )
    return list(dict.fromkeys(names))


def data_config(dataset: str, smoke: bool):
    """The DataConfig of one dataset from the data flags (smoke: few documents per split)."""
    cfg = dataclasses.replace(dataset_stats.config_from_flags(), dataset=dataset)
    if smoke and cfg.max_docs_per_split is None:
        cfg = dataclasses.replace(cfg, max_docs_per_split=SMOKE_DOCS_PER_SPLIT)
    return cfg


def stats_stage(data_cfg, loaded, workdir: str, min_count: int) -> dict:
    """Table 1 figures of one dataset, cached in WORKDIR/dataset_stats/NAME.json and reused only
    for the same settings and the same data (`dataset_fingerprint`)."""
    from attn_interp.data.fingerprint import dataset_fingerprint
    from attn_interp.records import record_differences
    from attn_interp.run_dirs import JobDir

    name = data_cfg.corpus_name
    path = JobDir(workdir).dataset_stats_path(name)
    key = {
        "config": _json(data_cfg),
        "min_count": min_count,
        "data_fingerprint": dataset_fingerprint(loaded).to_json(),
    }
    if os.path.isfile(path):
        with open(path) as f:
            stats = json.load(f)
        diffs = record_differences({k: stats.get(k) for k in key}, key)
        if not diffs:
            log(f"dataset statistics of {name}: reusing {path}")
            return stats
        log(
            f"dataset statistics of {name}: {path} is of other data or settings "
            f"({_brief(diffs)}); recomputing"
        )
    else:
        log(f"dataset statistics of {name}: computing")
    stats = dataset_stats.compute_stats(loaded, min_count=min_count)
    stats.update(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(path, stats, sort_keys=False)
    return stats


def baseline_stage(data_cfg, loaded) -> float | None:
    """TF-IDF + LR test accuracy of one dataset (cached by data fingerprint and settings under
    the cache dir); None, with a log line, when scikit-learn is not installed."""
    from attn_interp.baselines import SKLEARN_EXTRA, cached_tfidf_baseline, sklearn_version
    from attn_interp.data.fetch import resolve_cache_dir

    name = data_cfg.corpus_name
    if sklearn_version() is None:
        log(f"TF-IDF + LR baseline of {name}: skipped (pip install -e '.[{SKLEARN_EXTRA}]')")
        return None
    result = cached_tfidf_baseline(loaded, resolve_cache_dir(data_cfg.cache_dir), name=name)
    log(f"TF-IDF + LR baseline of {name}: test accuracy {result.test_accuracy:.4f}")
    return result.test_accuracy


def _json(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def _brief(diffs: list[str], n: int = 3) -> str:
    """The first `n` differences, shortened for one log line."""
    short = [d if len(d) < 120 else d[:117] + "..." for d in diffs[:n]]
    return "; ".join(short) + (f"; {len(diffs) - n} more" if len(diffs) > n else "")


def train_settings(data_cfg, loaded, arch: str, *, smoke: bool):
    """`config_flags.TrainingSettings` of one model: the preset, smoke mode's small settings, then
    the training flags given on the command line (shared with `experiments.train`)."""
    base = {"progress": not smoke}
    if smoke:
        base.update(SMOKE_SETTINGS)
    return config_flags.training_settings(
        flags.FLAGS, data_cfg.dataset, arch, len(loaded.splits["train"]), base=base
    )


def train_stage(data_cfg, loaded, arch: str, run_dir: str, *, smoke: bool, min_count: int):
    """Trains one model into `run_dir` unless it holds a finished run of the same settings and
    data; a run of other settings or data there is deleted and retrained (one log line says
    why). Returns final.json's content."""
    from attn_interp.run_dirs import RunDir
    from attn_interp.train.run import requested_run, train_and_evaluate

    train_cfg, overrides, word2vec = train_settings(data_cfg, loaded, arch, smoke=smoke)
    label = f"train {arch} on {data_cfg.corpus_name}"
    request = dict(
        arch=arch,
        model_overrides=overrides,
        word2vec=word2vec,
        embeddings_corpus=flags.FLAGS.embeddings_corpus,
        min_count=min_count,
    )
    folder = RunDir(run_dir)
    diffs = folder.differences(requested_run(data_cfg, train_cfg, loaded, **request))
    if diffs:
        log(
            f"{label}: {run_dir} holds a run of other settings or data ({_brief(diffs)}); retraining"
        )
        shutil.rmtree(run_dir)
    elif diffs is not None and folder.is_finished():
        log(f"{label}: finished run found, reusing {run_dir}")
        return folder.final()
    log(f"{label}: up to {train_cfg.epochs} epochs into {run_dir}")
    start = time.perf_counter()
    final = train_and_evaluate(data_cfg, train_cfg, run_dir, loaded=loaded, **request)
    log(
        f"{label}: test accuracy {final['test_accuracy']:.4f} after "
        f"{final['epochs']} epochs ({time.perf_counter() - start:.0f} s)"
    )
    return final


def erasure_config(smoke: bool):
    """The ErasureConfig of the job."""
    from attn_interp.erasure import ErasureConfig

    return ErasureConfig(
        random_mode=_RANDOM_MODE.value, num_random=2 if smoke else _NUM_RANDOM.value
    )


def _erasure_state(out_dir: str, run_dir: str, config, max_docs) -> tuple[bool | None, str]:
    """(True: finished with these settings on this trained run; False: nothing there, or a partial
    run of them; None: results of another setup, another trained run or an engine with other
    numbers; why, for the log)."""
    from attn_interp.erasure.evaluate import RESULTS_REVISION
    from attn_interp.run_dirs import ErasureDir, RunDir
    from attn_interp.train.checkpoint import BEST

    folder, run = ErasureDir(out_dir), RunDir(run_dir)
    manifest = folder.manifest()
    if manifest is None:
        return False, ""
    got_cfg = dict(manifest.get("erasure_config", {}))
    want = {
        "erasure_config": {k: v for k, v in _json(config).items() if k in got_cfg},
        "split": "test",
        "max_docs": max_docs,
        "results_revision": RESULTS_REVISION,  # not an older engine's numbers
        "run_sha256": run.identity(),  # the model trained on these settings and data
        "checkpoint_step": run.checkpoint_step(BEST),
    }
    diffs = folder.differences(want)
    if diffs:
        return None, _brief(diffs)
    return folder.is_finished(), ""


def erasure_stage(run_dir: str, label: str, config, max_docs, *, progress: bool) -> str:
    """Runs (or reuses) the erasure tests of one trained run; returns the output folder."""
    from attn_interp.erasure.evaluate import evaluate_run
    from attn_interp.run_dirs import RunDir

    out_dir = RunDir(run_dir).erasure().path
    done, why = _erasure_state(out_dir, run_dir, config, max_docs)
    if done:
        log(f"erasure {label}: finished results found, reusing {out_dir}")
        return out_dir
    if done is None:
        log(f"erasure {label}: {out_dir} holds results of other settings ({why}); recomputing")
    log(f"erasure {label}: running on {'all' if max_docs is None else max_docs} test documents")
    start = time.perf_counter()
    evaluate_run(
        run_dir,
        config,
        split="test",
        max_docs=max_docs,
        out_dir=out_dir,
        progress=progress,
        overwrite=done is None,
    )
    log(f"erasure {label}: done ({time.perf_counter() - start:.0f} s)")
    return out_dir


def followup_config(smoke: bool):
    """The FollowupConfig of the job (smoke: few adversary steps)."""
    from attn_interp.followups import FollowupConfig

    cfg = FollowupConfig()
    changes = {}
    if _FOLLOWUP_EPSILONS.value:
        changes["epsilons"] = tuple(float(e) for e in _FOLLOWUP_EPSILONS.value)
    if _FOLLOWUP_STEPS.value is not None or smoke:
        changes["steps"] = _FOLLOWUP_STEPS.value or 20
    if _FOLLOWUP_RESTARTS.value is not None:
        changes["restarts"] = _FOLLOWUP_RESTARTS.value
    return dataclasses.replace(cfg, **changes)


def other_seed_stage(data_cfg, loaded, arch: str, workdir: str, *, smoke: bool, min_count: int):
    """Trains (or reuses) `arch` with the job's seed + 1 into WORKDIR/seeds/NAME/ARCH for the
    'other seed' baseline; None when `arch` is not in --other_seed_models."""
    if arch not in _OTHER_SEED_MODELS.value:
        return None
    seed = train_settings(data_cfg, loaded, arch, smoke=smoke).train.seed
    from attn_interp.run_dirs import JobDir

    run_dir = JobDir(workdir).other_seed_run(data_cfg.corpus_name, arch).path
    given = flags.FLAGS.seed
    flags.FLAGS.seed = seed + 1  # train_stage reads the training flags
    try:
        train_stage(data_cfg, loaded, arch, run_dir, smoke=smoke, min_count=min_count)
    finally:
        flags.FLAGS.seed = given
    return run_dir


def followups_stage(run_dir: str, label: str, config, max_docs, *, other_dir, progress: bool):
    """Runs (or reuses: `evaluate_followups` keys its results by a manifest) the follow-up tests."""
    from attn_interp.followups.stage import evaluate_followups

    start = time.perf_counter()
    out = evaluate_followups(
        run_dir, config, max_docs=max_docs, other_workdir=other_dir, progress=progress
    )
    log(f"followups {label}: {out} ({time.perf_counter() - start:.0f} s)")
    return out


def followup_report_sections(workdir: str, models, report_dir: str) -> list:
    """Report sections of the follow-up tests and one document explorer per model (under
    report/explorer/); models without follow-up results get an explorer without their columns."""
    from attn_interp.analysis.explorer import write_explorer
    from attn_interp.analysis.followups_report import FollowupEntry, followup_sections
    from attn_interp.followups.stage import load_followups
    from attn_interp.run_dirs import JobDir

    entries, links = [], []
    for m in models:
        out = JobDir(workdir).run(m.dataset, m.arch).followups()
        columns = None
        if out.is_finished():
            columns, summary = load_followups(out.path)
            entries.append(FollowupEntry(m, columns, summary))
        if m.results.items is not None:
            stem = f"explorer/{m.dataset}_{m.arch}.html"
            write_explorer(m, os.path.join(report_dir, stem), followups=columns)
            links.append((f"{m.label}: every document", stem))
    return followup_sections(entries, os.path.join(report_dir, "figures"), links)


def run() -> str:
    """Runs every stage per the parsed flags; returns the path of report.md."""
    import jax

    from attn_interp.analysis import load_workdir_results, write_report
    from attn_interp.data import load_splits
    from attn_interp.run_dirs import JobDir

    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required (the output folder of the job).")
    job = JobDir(_WORKDIR.value)
    workdir = job.path
    smoke = _SMOKE.value
    models = parse_models(_MODELS.value)
    datasets = _DATASETS.value or [flags.FLAGS.dataset]
    max_docs = _MAX_TEST_DOCS.value
    if max_docs is None and smoke:
        max_docs = SMOKE_TEST_DOCS
    min_count = flags.FLAGS.min_count
    config = erasure_config(smoke)
    log(
        f"workdir {workdir}; datasets {datasets}; models {models}; backend "
        f"{jax.default_backend()}{'; smoke mode' if smoke else ''}"
    )
    report_dir = job.report_path
    for folder in (job.dataset_stats_dir, report_dir, os.path.join(report_dir, "documents")):
        remove_stale_temp_files(folder)  # left by a killed run
    names, baselines = [], {}
    for dataset in datasets:
        data_cfg = data_config(dataset, smoke)
        name = data_cfg.corpus_name  # a local corpus's own name (--local_name)
        names.append(name)
        loaded = load_splits(data_cfg)
        stats_stage(data_cfg, loaded, workdir, min_count)
        baselines[name] = baseline_stage(data_cfg, loaded)
        for arch in models:
            run_dir = job.run(name, arch).path
            train_stage(
                data_cfg,
                loaded,
                arch,
                run_dir,
                smoke=smoke,
                min_count=min_count,
            )
            erasure_stage(run_dir, f"{arch} on {name}", config, max_docs, progress=not smoke)
            if _FOLLOWUPS.value:
                other = other_seed_stage(
                    data_cfg, loaded, arch, workdir, smoke=smoke, min_count=min_count
                )
                followups_stage(
                    run_dir,
                    f"{arch} on {name}",
                    followup_config(smoke),
                    max_docs,
                    other_dir=other,
                    progress=not smoke,
                )
    found = load_workdir_results(workdir)  # every finished run, not only this command's
    for why in found.skipped:
        log(f"report: leaving out {why}")
    notes = [
        f"Every finished run of {workdir} ({len(found.models)}); this command trained or reused "
        f"{', '.join(models)} on {', '.join(names)}. Each run's own settings, the epochs it ran "
        "and its erasure settings are in the table 'Training runs in this workdir'; random "
        f"orderings: figures use #0; backend {jax.default_backend()}.",
        *[f"Left out: {why}" for why in found.skipped],
    ]
    if smoke:
        notes.append(
            "SMOKE RUN: tiny models (embed 16, hidden 8), one epoch, few documents; the numbers "
            "only show that the pipeline works."
        )
    log(f"report: writing figures and tables for {len(found.models)} models")
    md_path, html_path = write_report(
        found.models,
        report_dir,
        dataset_stats=found.dataset_stats,
        notes=notes,
        max_points_per_bin=_POINTS_PER_BIN.value,
        baselines=baselines,
        extra_sections=followup_report_sections(workdir, found.models, report_dir),
    )
    log(f"report written: {md_path} and {html_path}")
    return md_path


if __name__ == "__main__":
    app.run(launch(run, folder_flags=("workdir",)))
