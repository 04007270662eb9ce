"""The paper's tables (and the extensions) as `Table` objects rendered to Markdown and HTML.

Every function takes `ModelResults` (or dataset statistics) and returns a `Table` whose cells are
numbers (or strings); `Table.to_markdown()` / `Table.to_html()` format them. Statistics use the
instances with more than one item (paper_notes.md §6.6) except test accuracy (paper_notes.md Q8).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attn_interp.analysis.model_results import (
    BOX_RANKINGS,
    COMPARISON_BY_LABEL,
    COMPARISON_LABELS,
    ModelResults,
    arch_label,
    order_models,
    ranking_label,
)
from attn_interp.erasure.summary import decision_flip_shares


@dataclasses.dataclass(frozen=True)
class Table:
    """A titled table: `rows[i][j]` is the cell of row i under `columns[j]`.

    Cells are numbers, strings or None (shown as "–"). `percent_columns` are shown as "12.3";
    other floats with `float_format`.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    float_format: str = "{:.3f}"
    percent_columns: tuple[str, ...] = ()

    def cell_text(self, row: int, col: int) -> str:
        """The formatted text of one cell."""
        value = self.rows[row][col]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            if self.columns[col] in self.percent_columns:
                return f"{float(value):.1f}"
            return self.float_format.format(float(value))
        return str(value)

    def as_dicts(self) -> list[dict[str, Any]]:
        """Rows as {column: value} dicts."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: a bold title line, the table and the note."""

        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for i in range(len(self.rows)):
            cells = [esc(self.cell_text(i, j)) for j in range(len(self.columns))]
            lines.append("| " + " | ".join(cells) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def to_html(self) -> str:
        """An HTML <table> with a caption; all text escaped."""
        parts = [f"<table><caption>{html.escape(self.title)}</caption><thead><tr>"]
        parts += [f"<th>{html.escape(c)}</th>" for c in self.columns]
        parts.append("</tr></thead><tbody>")
        for i in range(len(self.rows)):
            parts.append("<tr>")
            for j in range(len(self.columns)):
                parts.append(f"<td>{html.escape(self.cell_text(i, j))}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
        if self.note:
            parts.append(f'<p class="note">{html.escape(self.note)}</p>')
        return "".join(parts)


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def dataset_table(stats: Sequence[Mapping[str, Any]]) -> Table:
    """Table 1 from `experiments.dataset_stats.compute_stats` dicts (one per dataset).

    One row per dataset and split: documents, tokens and sentences per document (mean ± SD), and
    the share of documents with more than one sentence. The note names each dataset's classes.
    """
    rows = []
    for st in stats:
        for split, count in st["splits"].items():
            tok, sen = st["tokens_per_doc"][split], st["sentences_per_doc"][split]
            rows.append(
                (
                    st["dataset"],
                    st["num_classes"],
                    split,
                    int(count),
                    f"{tok['mean']:.1f} ± {tok['sd']:.1f}",
                    f"{sen['mean']:.2f} ± {sen['sd']:.2f}",
                    100.0 * float(st["multi_sentence_share"][split]),
                )
            )
    cols = (
        "dataset",
        "classes",
        "split",
        "documents",
        "tokens / doc",
        "sentences / doc",
        "% docs > 1 sentence",
    )
    return Table(
        "Table 1: datasets",
        cols,
        tuple(rows),
        note="Mean ± population SD; sentences by the rule-based splitter."
        + "".join(
            f" Classes of {st['dataset']}: {', '.join(map(str, st['class_names']))}."
            for st in stats
            if st.get("class_names")
        ),
        percent_columns=("% docs > 1 sentence",),
    )


BASELINE_COLUMN = "TF-IDF + LR test accuracy %"


def accuracy_table(
    models: Sequence[ModelResults], baselines: Mapping[str, float | None] | None = None
) -> Table:
    """Test accuracy (all test documents, paper_notes.md Q8) and the erasure population of every
    model.

    baselines: dataset -> TF-IDF + logistic-regression test accuracy (a fraction; None: not
    computed, e.g. scikit-learn missing), shown beside every model of that dataset.
    """
    rows = []
    for m in order_models(models):
        c = m.summary["counts"]
        acc = None if m.test_accuracy is None else 100.0 * float(m.test_accuracy)
        base = None if baselines is None else baselines.get(m.dataset)
        f1 = None if m.run is None else m.run.final.get("test_macro_f1")
        rows.append(
            (
                m.dataset,
                arch_label(m.arch),
                acc,
                None if f1 is None else 100.0 * float(f1),
                *(() if baselines is None else (None if base is None else 100.0 * base,)),
                m.test_documents,
                c["total"],
                c["included_n_gt_1"],
                m.summary["prediction_mismatch"]["included"],
            )
        )
    cols = (
        "dataset",
        "model",
        "test accuracy %",
        "macro-F1 %",
        *(() if baselines is None else (BASELINE_COLUMN,)),
        "test docs (accuracy)",
        "docs erased",
        "docs n > 1",
        "Q10 mismatches",
    )
    return Table(
        "Test accuracy of every model",
        cols,
        tuple(rows),
        note=(
            "Accuracy and macro-F1 (the unweighted mean of the classes' F1) over all test "
            "documents; erasure statistics use the documents with more "
            "than one attention item (n > 1). Q10 mismatches: documents where the classifier head "
            "re-run on the unmodified weights disagrees with the full model."
            + (
                ""
                if baselines is None
                else " TF-IDF + LR: word uni- and bigrams with logistic regression on the same "
                "splits, C chosen on validation (`python -m experiments.baseline_tfidf`); the bar "
                "a model should reach. – : not computed by this job (the dataset was not in its "
                "--datasets, or scikit-learn is missing: `pip install -e '.[baseline]'`)."
            )
        ),
        percent_columns=("test accuracy %", "macro-F1 %", BASELINE_COLUMN),
    )


def decision_flip_cells(model: ModelResults, comparison: str = "attention") -> dict[str, float]:
    """Table 2's four percentages for one model: both, only the top item, only r, neither.

    comparison: "attention" (i*), "gradient" (i*_g) or "grad_x_attention" (i*_p).
    """
    if comparison not in COMPARISON_BY_LABEL:
        raise ValueError(f"comparison={comparison!r}: use one of {tuple(COMPARISON_BY_LABEL)}.")
    comp = COMPARISON_BY_LABEL[comparison]
    f_top = model.restrict(model.results.singles[comp.top].flip) != -1
    f_rand = model.restrict(model.results.singles[comp.rand].flip) != -1
    return decision_flip_shares(f_top, f_rand)


def decision_flip_table(models: Sequence[ModelResults], comparison: str = "attention") -> Table:
    """Table 2: % of n > 1 documents where removing the top item / a random other item flips.

    One row per model; the columns are the 2×2 cells. comparison picks i* ("attention"), i*_g
    ("gradient") or i*_p ("grad_x_attention").
    """
    sym = COMPARISON_LABELS.get(comparison, comparison)
    cols = (
        "dataset",
        "model",
        "docs n > 1",
        "both flip %",
        f"only {sym} flips %",
        "only r flips %",
        "neither %",
        "% ΔJS < 0",
    )
    rows = []
    for m in order_models(models):
        cells = decision_flip_cells(m, comparison)
        djs = m.delta(comparison)
        neg = 100.0 * float(np.mean(djs < 0)) if djs.size else None
        rows.append(
            (
                m.dataset,
                arch_label(m.arch),
                int(m.included.sum()),
                cells["both"],
                cells["only_top"],
                cells["only_random"],
                cells["neither"],
                neg,
            )
        )
    title = f"Table 2: decision flips from removing {sym} vs. a random other item r"
    return Table(
        title,
        cols,
        tuple(rows),
        note=(
            "Percentages of test documents with n > 1. Interpretable attention would give much "
            f"larger 'only {sym}' than 'only r' values. Last column: share of negative ΔJS "
            f"(JS after removing {sym} minus JS after removing r)."
        ),
        percent_columns=cols[3:],
    )


def never_flip_table(
    models: Sequence[ModelResults], rankings: Sequence[str] = BOX_RANKINGS
) -> Table:
    """% of n > 1 documents whose decision never flips, per model and ranking (plus the minimum)."""
    cols = ("dataset", "model", *(f"{ranking_label(r)} %" for r in rankings), "Exact minimum %")
    rows = []
    for m in order_models(models):
        row: list[Any] = [m.dataset, arch_label(m.arch)]
        for r in rankings:
            k = m.ranking_column(r, "k")
            row.append(None if k is None or not k.size else 100.0 * float(np.mean(k == -1)))
        k_min = m.min_flip_column("k")
        row.append(None if k_min is None or not k_min.size else 100.0 * float(np.mean(k_min == -1)))
        rows.append(tuple(row))
    return Table(
        "Documents whose decision never flips (all items removed)",
        cols,
        tuple(rows),
        note="Share of n > 1 documents; they are left out of the fraction-removed boxplots.",
        percent_columns=cols[2:],
    )


def removal_fraction_table(
    models: Sequence[ModelResults], rankings: Sequence[str] = BOX_RANKINGS
) -> Table:
    """Median (mean) fraction of items removed before the first flip, over flipped n > 1 docs."""
    cols = ("dataset", "model", *(ranking_label(r) for r in rankings), "Exact minimum")
    rows = []
    for m in order_models(models):
        row: list[Any] = [m.dataset, arch_label(m.arch)]
        fracs = [m.ranking_column(r, "frac") for r in rankings]
        fracs.append(m.min_flip_column("frac"))
        for f in fracs:
            f = None if f is None else f[f > 0]
            row.append(
                None if f is None or not f.size else f"{np.median(f):.3f} ({np.mean(f):.3f})"
            )
        rows.append(tuple(row))
    return Table(
        "Fraction of items removed up to the first decision flip: median (mean)",
        cols,
        tuple(rows),
        note="Over n > 1 documents that flip under the ranking.",
    )


def pairwise_table(models: Sequence[ModelResults]) -> Table:
    """Which ranking flips the decision sooner: attention vs. gradient and vs. Attn * Grad
    (paper_notes.md §7.1).

    Fractions of (n > 1 documents) − (documents where both never flip).
    """
    cols = (
        "dataset",
        "model",
        "other ranking",
        "denominator",
        "attention sooner %",
        "other sooner %",
        "tie %",
    )
    rows = []
    for m in order_models(models):
        for other, stats in m.summary.get("pairwise", {}).items():
            name = other.removeprefix("attention_vs_")
            rows.append(
                (
                    m.dataset,
                    arch_label(m.arch),
                    ranking_label(name),
                    stats["denominator"],
                    None if stats["attention_fewer"] is None else 100 * stats["attention_fewer"],
                    None if stats["other_fewer"] is None else 100 * stats["other_fewer"],
                    None if stats["tie"] is None else 100 * stats["tie"],
                )
            )
    return Table(
        "Which ranking flips the decision with fewer removals",
        cols,
        tuple(rows),
        note=(
            "Denominator: n > 1 documents minus those where neither ranking ever flips; a ranking "
            "that flips beats one that never does."
        ),
        percent_columns=cols[4:],
    )


def not_optimal_table(models: Sequence[ModelResults]) -> Table:
    """ "Attention is provably not optimal" (paper_notes.md §7.2) and the exact
    k_attention > k_min share (§12).

    Shares of all n > 1 documents.
    """
    cols = (
        "dataset",
        "model",
        "gradient sooner %",
        "Attn * Grad sooner %",
        "either sooner %",
        "k_attention > k_min %",
        "attention optimal %",
    )
    rows = []
    for m in order_models(models):
        s = m.summary.get("attention_provably_not_optimal", {})
        mfs = m.summary.get("minimum_flip_set", {})
        att = mfs.get("per_ranking", {}).get("attention", {})

        def pct(x):
            return None if x is None else 100.0 * x

        rows.append(
            (
                m.dataset,
                arch_label(m.arch),
                pct(s.get("gradient")),
                pct(s.get("grad_x_attention")),
                pct(s.get("gradient_or_grad_x_attention")),
                pct(att.get("not_optimal_share")),
                pct(att.get("optimal_share")),
            )
        )
    return Table(
        "Attention is provably not optimal",
        cols,
        tuple(rows),
        note=(
            "Shares of all n > 1 documents where another ranking flips the decision with strictly "
            "fewer removals (or flips while attention never does); k_attention > k_min uses the "
            "exact minimum flip set of the affine head."
        ),
        percent_columns=cols[2:],
    )


def optimality_gap_table(
    models: Sequence[ModelResults], rankings: Sequence[str] | None = None
) -> Table:
    """Per model and ranking: % exactly optimal and the mean / median gap k − k_min (items and share).

    rankings: default every ranking in the results.
    """
    cols = (
        "dataset",
        "model",
        "ranking",
        "optimal %",
        "not optimal %",
        "mean gap (items)",
        "median gap (items)",
        "mean gap / n",
    )
    rows = []
    for m in order_models(models):
        per = m.summary.get("minimum_flip_set", {}).get("per_ranking", {})
        names = list(rankings) if rankings is not None else list(per)
        for r in names:
            if r not in per:
                continue
            st = per[r]
            rows.append(
                (
                    m.dataset,
                    arch_label(m.arch),
                    ranking_label(r),
                    None if st["optimal_share"] is None else 100 * st["optimal_share"],
                    None if st["not_optimal_share"] is None else 100 * st["not_optimal_share"],
                    _num(st["mean_gap"]),
                    _num(st["median_gap"]),
                    _num(st["mean_gap_fraction"]),
                )
            )
    return Table(
        "Optimality gap: removals needed by each ranking minus the exact minimum",
        cols,
        tuple(rows),
        note="Gaps over n > 1 documents where both the ranking and the minimum flip.",
        percent_columns=("optimal %", "not optimal %"),
    )


def aopc_table(models: Sequence[ModelResults], rankings: Sequence[str] | None = None) -> Table:
    """AOPC comprehensiveness (remove top-k) and sufficiency (keep only top-k) per ranking.

    Higher comprehensiveness and lower sufficiency mean a more faithful ranking. "all k" averages
    k = 1..n; "fixed %" averages the configured fractions of n.
    """
    cols = (
        "dataset",
        "model",
        "ranking",
        "comprehensiveness (all k)",
        "sufficiency (all k)",
        "comprehensiveness (fixed %)",
        "sufficiency (fixed %)",
    )
    rows = []
    for m in order_models(models):
        names = list(rankings) if rankings is not None else list(m.results.rankings)
        for r in names:
            if m.ranking_column(r, "aopc_comp") is None:
                continue

            def mean(field, m=m, r=r):
                x = m.ranking_column(r, field)
                return None if x is None else _num(np.mean(x)) if x.size else None

            rows.append(
                (
                    m.dataset,
                    arch_label(m.arch),
                    ranking_label(r),
                    mean("aopc_comp"),
                    mean("aopc_suff"),
                    mean("aopc_comp_frac"),
                    mean("aopc_suff_frac"),
                )
            )
    return Table(
        "AOPC: drop in the predicted class probability (ERASER comprehensiveness / sufficiency)",
        cols,
        tuple(rows),
        note="Means over n > 1 documents, probabilities of the original prediction.",
        float_format="{:.4f}",
    )


def training_table(models: Sequence[ModelResults]) -> Table:
    """How each run was trained and erased: its own settings, the epochs it actually ran (from
    final.json), and the training documents the length caps dropped."""
    rows = []
    for m in order_models(models):
        if m.run is None:
            continue
        final, train, model = m.run.final, m.run.train, m.run.model
        dropped = final.get("train_documents_dropped_by_caps")
        caps = (train.get("max_sentences_per_doc"), train.get("max_tokens_per_sentence"))
        erasure = m.run.erasure.get("erasure_config") or {}
        max_docs = m.run.erasure.get("max_docs")
        rows.append(
            (
                m.dataset,
                arch_label(m.arch),
                f"{final.get('epochs', '?')} / {train.get('epochs', '?')}",
                final.get("best_epoch"),
                final.get("stopped_early"),
                train.get("learning_rate"),
                train.get("batch_size"),
                f"{model.get('embed_dim', '?')} / {model.get('hidden', '?')}",
                train.get("embeddings", "random"),
                "none"
                if caps == (None, None)
                else f"{caps[0] or '–'} sent. / {caps[1] or '–'} tok.",
                None if dropped is None else sum(dropped.values()),
                final.get("train_documents"),
                f"{erasure.get('random_mode', '?')}, {erasure.get('num_random', '?')} random"
                + ("" if max_docs is None else f", first {max_docs} docs"),
            )
        )
    cols = (
        "dataset",
        "model",
        "epochs run / max",
        "best epoch",
        "stopped early",
        "learning rate",
        "batch size",
        "embed / hidden",
        "embeddings",
        "training caps",
        "train docs dropped by caps",
        "train docs",
        "erasure",
    )
    return Table(
        "Training runs in this workdir",
        cols,
        tuple(rows),
        note=(
            "Each run with its own settings (config.json) and the epochs it ran (final.json). "
            "Training caps drop longer training documents (never validation or test ones)."
        ),
        float_format="{:g}",
    )


def per_class_table(models: Sequence[ModelResults]) -> Table:
    """Test accuracy per class (recall) of every run, from final.json."""
    rows = []
    for m in order_models(models):
        per_class = [] if m.run is None else m.run.final.get("test_per_class") or []
        for entry in per_class:
            acc = entry.get("accuracy")
            rows.append(
                (
                    m.dataset,
                    arch_label(m.arch),
                    entry.get("class"),
                    entry.get("documents"),
                    None if acc is None else 100.0 * float(acc),
                )
            )
    return Table(
        "Test accuracy per class",
        ("dataset", "model", "class", "test docs", "accuracy %"),
        tuple(rows),
        note="Share of each class's test documents the model assigns to that class (recall).",
        percent_columns=("accuracy %",),
    )
