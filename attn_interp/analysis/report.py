"""`write_report`: report.md and report.html with models, accuracies, every table and figure, the
per-document views and the paper's claims re-tested in plain sentences with our numbers."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attn_interp.analysis import figures, tables
from attn_interp.analysis.documents import write_document_view
from attn_interp.analysis.model_results import ModelResults, arch_label, order_models
from attn_interp.io_utils import atomic_write_text

_CSS = """
body{font-family:sans-serif;max-width:1150px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}
caption{font-weight:bold;text-align:left;padding:.3em 0}
.note{font-size:.85em;color:#555}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
li{margin:.3em 0}
"""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def claims(models: Sequence[ModelResults]) -> list[str]:
    """The paper's claims (paper_notes.md §13 item 16) re-tested per model, as plain sentences."""
    out = []
    for m in order_models(models):
        n_inc = int(m.included.sum())
        name = f"{arch_label(m.arch)} on {m.dataset} ({n_inc} test documents with n > 1)"
        if n_inc == 0:
            out.append(f"{name}: no document has more than one item; nothing to test.")
            continue
        c = tables.decision_flip_cells(m, "attention")
        f_top = c["both"] + c["only_top"]
        f_rand = c["both"] + c["only_random"]
        verdict = "holds" if f_top < 50.0 else "does not hold"
        out.append(
            f"{name}: removing the highest-attention item i* flips the decision in "
            f"{f_top:.1f}% of documents; removing a random other item r in {f_rand:.1f}%. The "
            f"paper's claim that zeroing i* usually does not flip the decision {verdict} here."
        )
        djs = m.delta("attention").astype(np.float64)
        neg = 100.0 * float(np.mean(djs < 0))
        off = c["only_top"] + c["only_random"]
        orange = 100.0 * c["only_random"] / off if off > 0 else None
        near0 = 100.0 * float(np.mean(np.abs(djs) < 0.01))
        out.append(
            f"{name}: only i* flips in {c['only_top']:.1f}%, only r in {c['only_random']:.1f}%; "
            f"r's share of the disagreements is {_pct(orange)}, against {neg:.1f}% of documents "
            f"with ΔJS < 0. |ΔJS| < 0.01 in {near0:.1f}% of documents (the paper: ΔJS is often "
            "close to 0)."
        )
        pw = m.summary.get("pairwise", {}).get("attention_vs_gradient")
        if pw and pw["denominator"]:
            out.append(
                f"{name}: the gradient ranking flips the decision with fewer removals than "
                f"attention in {100 * pw['other_fewer']:.1f}% of documents, attention sooner in "
                f"{100 * pw['attention_fewer']:.1f}%, ties in {100 * pw['tie']:.1f}% "
                f"(of {pw['denominator']} documents where at least one flips). The paper's claim "
                "that gradient rankings predict impact better than attention "
                f"{'holds' if pw['other_fewer'] > pw['attention_fewer'] else 'does not hold'} here."
            )
        nopt = m.summary.get("attention_provably_not_optimal", {})
        exact = m.summary.get("minimum_flip_set", {}).get("per_ranking", {}).get("attention")
        if nopt.get("gradient") is not None:
            extra = ""
            if exact and exact.get("not_optimal_share") is not None:
                extra = (
                    f"; by the exact minimum flip set, attention needs more removals than "
                    f"necessary in {100 * exact['not_optimal_share']:.1f}%"
                )
            either = nopt.get("gradient_or_grad_x_attention")
            out.append(
                f"{name}: attention is provably not optimal (the gradient flips strictly sooner) "
                f"in {100 * nopt['gradient']:.1f}% of documents (gradient or Attn * Grad: "
                f"{_pct(None if either is None else 100 * either)}){extra}."
            )
        med = {}
        for r in ("attention", "random0", "gradient"):
            f = m.ranking_column(r, "frac")
            if f is not None:
                f = f[f > 0]
                med[r] = float(np.median(f)) if f.size else None
        if med.get("attention") is not None:
            parts = [f"attention {med['attention']:.2f}"]
            parts += [
                f"{lbl} {med[r]:.2f}"
                for r, lbl in (("random0", "random"), ("gradient", "gradient"))
                if med.get(r) is not None
            ]
            out.append(
                f"{name}: median fraction of items removed before the first flip: "
                + ", ".join(parts)
                + ". Large fractions mean attention's top items are not a concise explanation."
            )
    return out


def _image_data_uri(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def write_report(
    models: Sequence[ModelResults],
    out_dir: str,
    *,
    dataset_stats: Sequence[Mapping[str, Any]] = (),
    title: str = "Is attention interpretable? Reproduction report",
    notes: Sequence[str] = (),
    max_points_per_bin: int | None = None,
    baselines: Mapping[str, float | None] | None = None,
    extra_sections: Sequence[tuple[str, Sequence[Any]]] = (),
) -> tuple[str, str]:
    """Writes `out_dir`/report.md, report.html, figures/ and documents/; returns the two paths.

    models: one `ModelResults` per (dataset, architecture). dataset_stats: Table 1 inputs
    (`experiments.dataset_stats.compute_stats` dicts). notes: extra sentences for the top of the
    report (e.g. settings of the run). baselines: dataset -> TF-IDF + LR test accuracy (None: not
    computed), a column of the accuracy table. extra_sections: (heading, items) pairs in this
    function's item format, placed before the per-document views (e.g.
    `attn_interp.analysis.followups_report.followup_sections`). report.html is self-contained (figures inlined as PNG data);
    report.md links the PNGs under figures/.
    """
    if not models:
        raise ValueError("write_report needs at least one ModelResults.")
    out_dir = os.path.abspath(out_dir)
    fig_dir = os.path.join(out_dir, "figures")
    doc_dir = os.path.join(out_dir, "documents")
    os.makedirs(fig_dir, exist_ok=True)
    models = order_models(models)

    sections: list[tuple[str, list[Any]]] = []  # (heading, [Table | ("fig", path) | str])
    intro: list[Any] = list(notes)
    sections.append(("Settings", intro))
    if dataset_stats:
        sections.append(("Datasets", [tables.dataset_table(dataset_stats)]))
    model_items: list[Any] = [tables.accuracy_table(models, baselines)]
    for table in (tables.training_table(models), tables.per_class_table(models)):
        if table.rows:
            model_items.append(table)
    sections.append(("Models", model_items))
    sections.append(("The paper's claims, re-tested", [("list", claims(models))]))
    t2 = [
        tables.decision_flip_table(models, c) for c in ("attention", "gradient", "grad_x_attention")
    ]
    sections.append(("Single-weight erasure (Table 2)", t2))
    figs3 = figures.figure_js_vs_alpha(models, fig_dir, max_points_per_bin=max_points_per_bin)
    figs4 = figures.figure_negative_js_hist(models, fig_dir)
    sections.append(
        (
            "ΔJS against Δα (Figures 3 and 4)",
            [
                "Every n > 1 document is plotted"
                + (
                    f" (at most {max_points_per_bin} per 0.005-wide Δα bin, the maximum kept)"
                    if max_points_per_bin
                    else ""
                )
                + "; the y axis is the raw difference in JS divergence (nats).",
                *[("fig", p) for p in figs3 + figs4],
            ],
        )
    )
    figs5 = figures.figure_removal_boxplots(models, fig_dir, quantity="frac")
    figs6 = figures.figure_removal_boxplots(models, fig_dir, quantity="probmass")
    sections.append(
        (
            "Removing items until the decision flips (Figures 5 and 6)",
            [
                tables.removal_fraction_table(models),
                tables.never_flip_table(models),
                *[("fig", p) for p in figs5 + figs6],
            ],
        )
    )
    sections.append(
        (
            "Which ranking flips sooner",
            [tables.pairwise_table(models), tables.not_optimal_table(models)],
        )
    )
    gap_figs = figures.figure_optimality_gap(models, fig_dir)
    sections.append(
        (
            "Extensions: optimality gap and AOPC",
            [
                tables.optimality_gap_table(models),
                *[("fig", p) for p in gap_figs],
                tables.aopc_table(models),
            ],
        )
    )
    sections += [(heading, list(items)) for heading, items in extra_sections]
    doc_links = []
    for m in models:
        if m.results.items is None:
            continue
        stem = f"{m.dataset}_{m.arch}.html"
        write_document_view(m, os.path.join(doc_dir, stem))
        doc_links.append((m.label, f"documents/{stem}"))
    if doc_links:
        sections.append(("Per-document views", [("links", doc_links)]))

    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        if not items:
            continue
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for it in items:
            if isinstance(it, tables.Table):
                md += [it.to_markdown(), ""]
                body.append(it.to_html())
            elif isinstance(it, str):
                md += [it, ""]
                body.append(f"<p>{html.escape(it)}</p>")
            elif it[0] == "fig":
                rel = os.path.relpath(it[1], out_dir)
                md += [f"![{os.path.basename(rel)}]({rel})", ""]
                body.append(f'<p><img src="{_image_data_uri(it[1])}" alt="{html.escape(rel)}"></p>')
            elif it[0] == "list":
                md += [f"* {s}" for s in it[1]] + [""]
                body.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in it[1]) + "</ul>")
            elif it[0] == "links":
                md += [f"* [{lbl}]({href})" for lbl, href in it[1]] + [""]
                body.append(
                    "<ul>"
                    + "".join(
                        f'<li><a href="{html.escape(h)}">{html.escape(lbl)}</a></li>'
                        for lbl, h in it[1]
                    )
                    + "</ul>"
                )
    md_path = os.path.join(out_dir, "report.md")
    html_path = os.path.join(out_dir, "report.html")
    atomic_write_text(md_path, "\n".join(md))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    atomic_write_text(html_path, page)
    return md_path, html_path
