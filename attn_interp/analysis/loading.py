"""`load_model_results`: a `ModelResults` from a trained run folder with finished erasure tests."""

from __future__ import annotations

import dataclasses
import json
import os

from attn_interp.analysis.model_results import ModelResults, RunInfo
from attn_interp.run_dirs import DATA_SHA_KEY, JobDir, RunDir


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def load_model_results(run_dir: str, *, erasure_dir: str | None = None) -> ModelResults:
    """Reads a run folder (final.json, config.json) and its erasure results into `ModelResults`.

    Args:
      run_dir: a training run folder (`experiments.train --workdir`) that holds final.json.
      erasure_dir: the `evaluate_run` output folder (default RUN_DIR/erasure).

    Raises:
      FileNotFoundError: training or the erasure tests have not finished.
      ValueError: the erasure results were computed on another trained run (other settings,
        data or checkpoint) than the one in `run_dir`.
    """
    from attn_interp.erasure.evaluate import load_erasure_results

    run = RunDir(run_dir)
    final = run.final()
    if final is None:
        raise FileNotFoundError(
            f"{run.path} has no final.json: training has not finished. Run "
            "`python -m experiments.train --workdir=RUN` first."
        )
    folder = run.erasure(erasure_dir)
    folder.check_run(run)
    results, summary = load_erasure_results(folder.path)
    documents = None
    docs_path = folder.documents_path
    if os.path.isfile(docs_path):
        with open(docs_path, encoding="utf-8") as f:
            documents = [json.loads(line) for line in f if line.strip()]
    record = run.record() or {}
    class_names = record.get("class_names")
    manifest = folder.manifest() or {}
    info = RunInfo(
        final=final,
        train=record.get("train", {}),
        model=record.get("model", {}),
        erasure={k: manifest.get(k) for k in ("erasure_config", "max_docs", "split")},
    )
    return ModelResults(
        dataset=str(final.get("dataset", "?")),
        arch=str(final.get("model", "?")),
        results=results,
        summary=summary,
        test_accuracy=final.get("test_accuracy"),
        test_documents=final.get("test_documents"),
        documents=documents,
        class_names=class_names,
        run=info,
    )


@dataclasses.dataclass(frozen=True)
class WorkdirResults:
    """Every finished run of a main-job workdir, with the Table 1 statistics of its data.

    models: one `ModelResults` per finished run (trained and erased), in folder order.
    dataset_stats: the statistics (WORKDIR/dataset_stats/NAME.json) of each corpus with runs,
      only where they were computed from the same data the runs were trained on.
    skipped: one sentence per run folder left out, saying why.
    """

    models: list[ModelResults]
    dataset_stats: list[dict]
    skipped: list[str]


def load_workdir_results(workdir: str) -> WorkdirResults:
    """All finished runs under WORKDIR/runs/NAME/ARCH (`experiments.reproduce`'s layout).

    A run is left out (with the reason in `skipped`) when training or its erasure tests have not
    finished, when its erasure results belong to another trained run, or when it was trained on
    other data than the corpus's statistics were computed from (another file under the same
    name): the report never mixes results of different inputs.
    """
    job = JobDir(workdir)
    root = job.runs_path
    models, skipped, stats_out = [], [], []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        stats = _read_json(job.dataset_stats_path(name))
        splits = stats.get("data_fingerprint", {}).get("splits")
        used = False
        for arch in sorted(os.listdir(os.path.join(root, name))):
            run = job.run(name, arch)
            record = run.record() or {}
            if not run.erasure().is_finished():
                skipped.append(f"{name}/{arch}: training or its erasure tests have not finished.")
                continue
            if splits is not None and record.get(DATA_SHA_KEY) != splits:
                skipped.append(
                    f"{name}/{arch}: trained on other data than dataset_stats/{name}.json "
                    "describes; re-run the main job with that run's data flags to update it."
                )
                continue
            try:
                models.append(load_model_results(run.path))
            except ValueError as err:
                skipped.append(f"{name}/{arch}: {err}")
                continue
            used = True
        if used and splits is not None:
            stats_out.append(stats)
    return WorkdirResults(models=models, dataset_stats=stats_out, skipped=skipped)
