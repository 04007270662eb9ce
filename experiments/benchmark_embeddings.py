r"""Random-init against word2vec embeddings, same seeds and presets, beside TF-IDF + LR.

    python -m experiments.benchmark_embeddings --workdir=/tmp/emb \
        --runs=yahoo_answers_10k:han_rnn,yahoo_answers_10k:flan_conv,imdb_50k:flan_rnn:2

Each run is DATASET:ARCH[:EPOCHS] with the dataset's default preset (`preset_for`), trained once
with random embeddings and once with word2vec (paper settings, `Word2VecConfig()`) into
WORKDIR/DATASET/ARCH/{random,word2vec}; a finished run folder is reused, so the command can be
re-run after an interruption or with more runs. word2vec's own time (training the vectors, or
loading them from the cache) is reported separately from the classifier's training time.
Prints a table, then one JSON line {"runs": [...], "baselines": {dataset: test accuracy}}.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import app, flags

from attn_interp.io_utils import atomic_write_json
from experiments.cli import launch

_WORKDIR = flags.DEFINE_string("workdir", None, "Base folder of the runs (required).")
_RUNS = flags.DEFINE_list("runs", None, "DATASET:ARCH[:EPOCHS] specs (required).")
_EMBEDDINGS = flags.DEFINE_list("embeddings", ["random", "word2vec"], "Initialisations compared.")
_BASELINE = flags.DEFINE_bool("baseline", True, "Also compute (or reuse) TF-IDF + LR.")
_SKIP_GRAM = flags.DEFINE_bool("w2v_skip_gram", False, "word2vec: skip-gram instead of CBOW.")
_W2V_EPOCHS = flags.DEFINE_integer("w2v_epochs", 5, "word2vec: epochs over the corpus.")


def _word2vec_config():
    from attn_interp.embeddings import Word2VecConfig

    return Word2VecConfig(skip_gram=_SKIP_GRAM.value, epochs=_W2V_EPOCHS.value)


def _label(embeddings: str) -> str:
    """Run folder / table name: "word2vec" for the paper's settings, else with the changes."""
    if embeddings != "word2vec":
        return embeddings
    cfg, paper = _word2vec_config(), type(_word2vec_config())()
    changed = [f"{k}={v}" for k, v in vars(cfg).items() if getattr(paper, k) != v]
    return "-".join(["word2vec", *changed])


def _train(dataset: str, arch: str, epochs: int | None, embeddings: str) -> dict:
    from attn_interp.data import DataConfig, load_splits
    from attn_interp.run_dirs import RunDir
    from attn_interp.train.config import preset_for
    from attn_interp.train.run import train_and_evaluate

    run_dir = RunDir(os.path.join(_WORKDIR.value, dataset, arch, _label(embeddings)))
    if run_dir.is_finished():
        return run_dir.final()
    data_cfg = DataConfig(dataset=dataset)
    preset = preset_for(dataset, arch, train_docs=len(load_splits(data_cfg).splits["train"]))
    over = {"embeddings": embeddings, "progress": False}
    if epochs:
        over["epochs"] = epochs
    train_cfg = dataclasses.replace(preset.train, **over)
    return train_and_evaluate(
        data_cfg,
        train_cfg,
        run_dir.path,
        arch=arch,
        model_overrides=dataclasses.asdict(preset.dropouts),
        word2vec=_word2vec_config(),
    )


def _baseline(dataset: str) -> float | None:
    from attn_interp.baselines import cached_tfidf_baseline
    from attn_interp.data import DataConfig, load_splits
    from attn_interp.data.fetch import resolve_cache_dir

    data_cfg = DataConfig(dataset=dataset)
    result = cached_tfidf_baseline(load_splits(data_cfg), resolve_cache_dir(None))
    return result.test_accuracy


def run() -> dict:
    """Trains (or reuses) every run; prints the table and the JSON line."""
    if not _WORKDIR.value or not _RUNS.value:
        raise app.UsageError("--workdir and --runs are required.")
    rows = []
    for spec in _RUNS.value:
        dataset, arch, *rest = spec.split(":")
        epochs = int(rest[0]) if rest else None
        for emb in _EMBEDDINGS.value:
            final = _train(dataset, arch, epochs, emb)
            rows.append({"dataset": dataset, "model": arch, **final, "embeddings": _label(emb)})
            print(
                f"{dataset} {arch} {_label(emb)}: test {final['test_accuracy']:.4f} "
                f"train {final['train_seconds']:.0f} s",
                flush=True,
            )
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    baselines = {d: _baseline(d) for d in datasets} if _BASELINE.value else {}
    print(
        "\n| dataset | model | embeddings | test acc. | val. acc. | epochs (best) | train s "
        "| word2vec s | TF-IDF + LR |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = baselines.get(r["dataset"])
        print(
            f"| {r['dataset']} | {r['model']} | {r['embeddings']} | "
            f"{100 * r['test_accuracy']:.1f}% | {100 * r['validation_accuracy']:.1f}% | "
            f"{r['epochs']} ({r['best_epoch']}) | {r['train_seconds']:.0f} | "
            f"{r.get('embeddings_seconds', 0):.0f} | "
            f"{'-' if base is None else f'{100 * base:.1f}%'} |"
        )
    out = {"runs": rows, "baselines": baselines}
    atomic_write_json(os.path.join(_WORKDIR.value, "benchmark_embeddings.json"), out)
    print(json.dumps(out, sort_keys=True))
    return out


if __name__ == "__main__":
    app.run(launch(run))
