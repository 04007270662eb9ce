r"""TF-IDF + logistic regression on a dataset's splits: the bar the attention models should reach.

    python -m experiments.baseline_tfidf --dataset=yahoo_answers_10k
    python -m experiments.baseline_tfidf --datasets=yahoo_answers_10k,imdb_50k
    python -m experiments.baseline_tfidf --dataset=local --local_path=my.csv --local_name=mine

Data flags are those of `experiments.dataset_stats`. C is chosen on the validation split; the
test accuracy counts every test document. Results are cached under ``<cache_dir>/baselines``
keyed by the data fingerprint and settings (`--nocache` recomputes). Prints a table, then one JSON
line: {"runs": [{"dataset", "test_accuracy", "validation_accuracy", "c", "features",
"seconds"}, ...]}. Needs scikit-learn (``pip install -e '.[baseline]'``).
"""

from __future__ import annotations

import dataclasses
import json

from absl import app, flags

from attn_interp.baselines import TfidfConfig, cached_tfidf_baseline, tfidf_baseline
from experiments import dataset_stats
from experiments.cli import launch

_DATASETS = flags.DEFINE_list("datasets", None, "Dataset names; default: the --dataset flag.")
_NGRAMS = flags.DEFINE_integer("ngrams", TfidfConfig.ngrams, "Largest word n-gram.")
_MIN_DF = flags.DEFINE_integer("min_df", TfidfConfig.min_df, "Minimum document frequency.")
_C_GRID = flags.DEFINE_list(
    "c_grid", [f"{c:g}" for c in TfidfConfig.c_grid], "Inverse regularisation strengths tried."
)
_CACHE = flags.DEFINE_bool("cache", True, "Reuse a cached result of the same data and settings.")


def run() -> list[dict]:
    """Computes (or reuses) the baseline of every dataset; prints the table and the JSON line."""
    from attn_interp.data import load_splits
    from attn_interp.data.fetch import resolve_cache_dir

    cfg = TfidfConfig(
        ngrams=_NGRAMS.value, min_df=_MIN_DF.value, c_grid=tuple(float(c) for c in _C_GRID.value)
    )
    rows = []
    for name in _DATASETS.value or [flags.FLAGS.dataset]:
        data_cfg = dataclasses.replace(dataset_stats.config_from_flags(), dataset=name)
        loaded = load_splits(data_cfg)
        if _CACHE.value:
            result = cached_tfidf_baseline(
                loaded, resolve_cache_dir(data_cfg.cache_dir), cfg, name=data_cfg.corpus_name
            )
        else:
            result = tfidf_baseline(loaded, cfg)
        rows.append({"dataset": data_cfg.corpus_name, **result._asdict()})
    print("| dataset | test acc. | validation acc. | C | features | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {100 * r['test_accuracy']:.1f}% | "
            f"{100 * r['validation_accuracy']:.1f}% | {r['c']:g} | {r['features']:,} | "
            f"{r['seconds']:.1f} |"
        )
    print(json.dumps({"config": dataclasses.asdict(cfg), "runs": rows}, sort_keys=True))
    return rows


if __name__ == "__main__":
    app.run(launch(run))
