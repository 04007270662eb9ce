"""`load_model_results`: a `ModelResults` from a trained run folder with finished erasure tests."""

from __future__ import annotations

import json
import os

from attn_interp.analysis.model_results import ModelResults


def _check_same_run(run_dir: str, out_dir: str) -> None:
    """Refuses erasure results whose manifest names another trained run than `run_dir` holds."""
    from attn_interp.train.run import run_identity

    path = os.path.join(out_dir, "manifest.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        recorded = json.load(f).get("run_sha256")
    if recorded is not None and recorded != run_identity(run_dir):
        raise ValueError(
            f"{out_dir} holds erasure results of another trained run than {run_dir} (other "
            "settings or data): re-run the erasure tests on this run (python -m "
            "experiments.erasure --workdir=RUN --overwrite)."
        )


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

    run_dir = os.path.abspath(run_dir)
    final_path = os.path.join(run_dir, "final.json")
    if not os.path.isfile(final_path):
        raise FileNotFoundError(
            f"{run_dir} has no final.json: training has not finished. Run "
            "`python -m experiments.train --workdir=RUN` first."
        )
    with open(final_path) as f:
        final = json.load(f)
    out_dir = os.path.abspath(erasure_dir or os.path.join(run_dir, "erasure"))
    _check_same_run(run_dir, out_dir)
    results, summary = load_erasure_results(out_dir)
    documents = None
    docs_path = os.path.join(out_dir, "documents.jsonl")
    if os.path.isfile(docs_path):
        with open(docs_path, encoding="utf-8") as f:
            documents = [json.loads(line) for line in f if line.strip()]
    class_names = None
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            class_names = json.load(f).get("class_names")
    return ModelResults(
        dataset=str(final.get("dataset", "?")),
        arch=str(final.get("model", "?")),
        results=results,
        summary=summary,
        test_accuracy=final.get("test_accuracy"),
        test_documents=final.get("test_documents"),
        documents=documents,
        class_names=class_names,
    )
