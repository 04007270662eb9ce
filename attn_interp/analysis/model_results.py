"""`ModelResults`: the erasure results of one trained model, plus what the report needs about it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attn_interp.erasure import COMPARISONS, RemovalCurve, SuiteResults, from_flat, summarize
from attn_interp.models.config import ARCHITECTURES

# Display names (paper_notes.md §1.1 figure labels: "han_rnn" -> "HANrnn"), in the order models
# appear in tables and figures (`ARCHITECTURES`).
ARCH_LABELS = {a: a.split("_")[0].upper() + a.split("_")[1] for a in ARCHITECTURES}
RANKING_LABELS = {
    "random0": "Random",
    "attention": "Attention",
    "gradient": "Gradient",
    "grad_x_attention": "Attn * Grad",
    "minimum": "Exact minimum",
    "attention_asc": "Attention (ascending)",
    "leave_one_out": "Leave-one-out JS",
    "norm": "Attention x norm",
}
# Rankings of Figures 5/6, in the paper's box order, then the exact minimum flip set
# (paper_notes.md §12).
BOX_RANKINGS = ("random0", "attention", "gradient", "grad_x_attention")
COMPARISON_LABELS = {"attention": "i*", "gradient": "i*_g", "grad_x_attention": "i*_p"}
COMPARISON_BY_LABEL = {c.label: c for c in COMPARISONS}


def arch_label(arch: str) -> str:
    """Display name of an architecture ("han_rnn" -> "HANrnn"); unknown names pass through."""
    return ARCH_LABELS.get(arch, arch)


def ranking_label(name: str) -> str:
    """Display name of a ranking ("grad_x_attention" -> "Attn * Grad")."""
    if name in RANKING_LABELS:
        return RANKING_LABELS[name]
    if name.startswith("random") and name[6:].isdigit():
        return f"Random #{name[6:]}"
    return name


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the report says about one trained run besides its erasure results.

    final: the run's final.json (epochs run, best epoch, macro-F1, per-class accuracy, documents
      dropped by the training caps, ...).
    train: the run's TrainConfig as recorded in config.json (learning rate, batch size, ...).
    model: the run's ModelConfig as recorded (embed_dim, hidden, dropouts, ...).
    erasure: the erasure manifest's settings (erasure_config, max_docs).
    """

    final: Mapping[str, Any]
    train: Mapping[str, Any]
    model: Mapping[str, Any]
    erasure: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelResults:
    """Erasure results of one model on one dataset.

    dataset: dataset name (e.g. "yahoo_answers_10k").
    arch: architecture, one of `attn_interp.models.ARCHITECTURES` (other names are allowed).
    results: the `SuiteResults` of `run_suite` / `load_erasure_results` (a flat results.npz
      dict is converted with `from_flat`).
    summary: `attn_interp.erasure.summarize(results)`; computed when None.
    test_accuracy: accuracy of the model over all test documents (paper_notes.md Q8), or None.
    test_documents: number of test documents behind `test_accuracy`, or None.
    documents: optional rows of documents.jsonl (doc_index, label, predicted, seq_len, items: the
      item strings: sentences for HAN, tokens for FLAN), used by the per-document view.
    class_names: optional class names, indexed by class id.
    run: optional `RunInfo` of the trained run (settings, epochs, caps, per-class metrics).
    """

    dataset: str
    arch: str
    results: SuiteResults
    summary: Mapping[str, Any] | None = None
    test_accuracy: float | None = None
    test_documents: int | None = None
    documents: Sequence[Mapping[str, Any]] | None = None
    class_names: Sequence[str] | None = None
    run: RunInfo | None = None

    def __post_init__(self) -> None:
        results = self.results
        if not isinstance(results, SuiteResults):
            try:
                results = from_flat(results)
            except ValueError as e:
                raise ValueError(f"results of {self.arch} on {self.dataset}: {e}") from e
            object.__setattr__(self, "results", results)
        if self.summary is None:
            object.__setattr__(self, "summary", summarize(results))

    @property
    def label(self) -> str:
        """ "HANrnn / yahoo_answers_10k"."""
        return f"{arch_label(self.arch)} / {self.dataset}"

    @property
    def included(self) -> np.ndarray:
        """bool `[docs]`: the instances every erasure statistic uses (n > 1, paper_notes.md §6.6)."""
        return self.results.included

    def restrict(self, x: np.ndarray, *, included: bool = True) -> np.ndarray:
        """A per-instance array `[docs]` restricted to n > 1 unless `included=False`."""
        x = np.asarray(x)
        return x[self.included] if included else x

    def curve(self, name: str) -> RemovalCurve:
        """The removal curve of ranking `name` (KeyError naming the missing column if absent)."""
        if name not in self.results.rankings:
            raise KeyError(
                f"results of {self.label} have no ranking {name!r} (rank_{name}_k); re-run the "
                "erasure tests with the ranking that produces it."
            )
        return self.results.rankings[name]

    def ranking_column(self, name: str, field: str, *, included: bool = True) -> np.ndarray | None:
        """`field` of ranking `name`'s `RemovalCurve` `[docs]` (n > 1 unless `included=False`);
        None when that ranking or field was not computed."""
        curve = self.results.rankings.get(name)
        x = None if curve is None else getattr(curve, field)
        return None if x is None else self.restrict(x, included=included)

    def min_flip_column(self, field: str, *, included: bool = True) -> np.ndarray | None:
        """`field` ("k" or "frac") of the exact minimum flip set `[docs]`; None if not computed."""
        mf = self.results.min_flip
        return None if mf is None else self.restrict(getattr(mf, field), included=included)

    def delta(self, comparison: str, field: str = "js") -> np.ndarray:
        """Top minus random item's `field` ("js" or "weight") for a comparison label, n > 1."""
        return self.restrict(self.results.delta(COMPARISON_BY_LABEL[comparison], field))

    def item_offsets(self) -> np.ndarray:
        """int `[docs + 1]`: document i's items are `items.*[offsets[i]:offsets[i + 1]]`."""
        return self.results.item_offsets()


def order_models(models: Sequence[ModelResults]) -> list[ModelResults]:
    """Models sorted by dataset (first-seen order), then by the paper's architecture order."""
    datasets = list(dict.fromkeys(m.dataset for m in models))
    archs = list(ARCHITECTURES)

    def key(m: ModelResults):
        a = archs.index(m.arch) if m.arch in archs else len(archs)
        return (datasets.index(m.dataset), a, m.arch)

    return sorted(models, key=key)


def architectures(models: Sequence[ModelResults]) -> list[str]:
    """The architectures present, in the paper's order."""
    return list(dict.fromkeys(m.arch for m in order_models(models)))


def datasets(models: Sequence[ModelResults]) -> list[str]:
    """The datasets present, in first-seen order."""
    return list(dict.fromkeys(m.dataset for m in models))
