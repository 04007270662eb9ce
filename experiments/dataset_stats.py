r"""Prints Table 1 of the paper for one dataset and ends with one JSON line of the same figures.

    python -m experiments.dataset_stats --dataset=yahoo_answers_10k
    python -m experiments.dataset_stats --dataset=local --local_path=my.csv \
        --local_text_column=review --local_label_column=stars --local_name=reviews
    python -m experiments.dataset_stats --dataset=local --local_dir=aclImdb \
        --local_skip_folders=unsup --local_encoding=utf-8

Your own corpus (files, folders, encodings, how validation is carved): docs/datasets.md.

Figures per split: documents, skipped rows/documents by reason, tokens per document (mean ± SD,
population SD), sentences per document (mean ± SD; rule-based splitter), share of documents with
more than one sentence; plus classes and the vocabulary size (train + validation, min count).
The JSON line has the keys ``dataset``, ``num_classes``, ``class_names``, ``splits`` (split ->
document count), ``tokens_per_doc``, ``sentences_per_doc``, ``multi_sentence_share``, ``skipped``,
``vocab_size``, ``min_count`` and ``source``.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags

from attn_interp.data import (
    DataConfig,
    LoadedDataset,
    Vocabulary,
    load_splits,
    tokenize_sentences,
)
from experiments import config_flags
from experiments.cli import launch

config_flags.define_data_flags(flags.FLAGS)
flags.adopt_module_key_flags(config_flags)  # list the generated flags in --help


def config_from_flags() -> DataConfig:
    """The `DataConfig` given by the command-line flags."""
    return config_flags.data_config_from_flags(flags.FLAGS)


def _mean_sd(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"mean": float("nan"), "sd": float("nan")}
    return {"mean": round(float(x.mean()), 3), "sd": round(float(x.std()), 3)}


def compute_stats(ds: LoadedDataset, min_count: int = 5) -> dict:
    """Table-1 figures for `ds` as a JSON-ready dict."""
    tokens_per_doc, sentences_per_doc, multi, skipped = {}, {}, {}, {}
    vocab_lists = []
    for name, split in ds.splits.items():
        sents = [tokenize_sentences(t) for t in split.texts]
        n_tok = np.array([sum(len(s) for s in doc) for doc in sents if doc], dtype=np.float64)
        n_sent = np.array([len(doc) for doc in sents if doc], dtype=np.float64)
        tokens_per_doc[name] = _mean_sd(n_tok)
        sentences_per_doc[name] = _mean_sd(n_sent)
        multi[name] = round(float((n_sent > 1).mean()), 4) if n_sent.size else float("nan")
        counts = dict(ds.skipped.get(name, {}))
        no_tokens = sum(1 for doc in sents if not doc)
        if no_tokens:
            counts["no_tokens"] = no_tokens
        skipped[name] = {k: int(v) for k, v in counts.items() if v}
        if name in ("train", "validation"):
            vocab_lists.extend(sent for doc in sents for sent in doc)
    for where, counts in ds.skipped.items():
        if where not in ds.splits:
            skipped[where] = {k: int(v) for k, v in counts.items() if v}
    vocab = Vocabulary.build(vocab_lists, min_count=min_count)
    return {
        "dataset": ds.name,
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "splits": {k: len(v) for k, v in ds.splits.items()},
        "tokens_per_doc": tokens_per_doc,
        "sentences_per_doc": sentences_per_doc,
        "multi_sentence_share": multi,
        "skipped": skipped,
        "vocab_size": len(vocab),
        "min_count": min_count,
        "source": ds.source,
    }


def format_table(stats: dict) -> str:
    """Human-readable Table 1 from `compute_stats` output."""
    lines = [
        f"Dataset {stats['dataset']}: {stats['num_classes']} classes; vocabulary "
        f"{stats['vocab_size']} ids (min count {stats['min_count']}, with pad + UNK)",
        f"source: {stats['source'] or '-'}",
        "classes: " + ", ".join(stats["class_names"]),
        "",
        f"{'split':<11}{'docs':>7}  {'tokens/doc (mean ± SD)':>24}  {'sentences/doc':>16}"
        f"  {'>1 sentence':>11}  skipped",
    ]
    for name, count in stats["splits"].items():
        t, s = stats["tokens_per_doc"][name], stats["sentences_per_doc"][name]
        skipped = stats["skipped"].get(name) or {}
        skip_txt = ", ".join(f"{k}={v}" for k, v in skipped.items()) or "0"
        lines.append(
            f"{name:<11}{count:>7}  {t['mean']:>12.1f} ± {t['sd']:<9.1f}  "
            f"{s['mean']:>7.2f} ± {s['sd']:<6.2f}  {100 * stats['multi_sentence_share'][name]:>10.1f}%"
            f"  {skip_txt}"
        )
    for where, skipped in stats["skipped"].items():
        if where not in stats["splits"] and skipped:
            lines.append(f"skipped before splitting: {skipped}")
    return "\n".join(lines)


def run() -> dict:
    """Loads the dataset given by the flags; prints Table 1 and the JSON line; returns the stats."""
    ds = load_splits(config_from_flags())
    stats = compute_stats(ds, min_count=flags.FLAGS.min_count)
    print(format_table(stats))
    print(json.dumps(stats, sort_keys=False), flush=True)
    return stats


if __name__ == "__main__":
    app.run(launch(run))
