"""Per-document view: a self-contained HTML page of a few documents, items shaded by attention,
gradient and gradient × attention, with each ranking's removals up to its first flip marked."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

from attn_interp.analysis.model_results import ModelResults, ranking_label
from attn_interp.io_utils import atomic_write_text

_CSS = """
body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
.doc{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:1em 0}
.row{margin:.4em 0;line-height:1.9}
.row .lab{display:inline-block;width:11em;font-weight:bold;vertical-align:top}
.it{padding:1px 3px;margin:1px;border-radius:3px;border:1px solid transparent}
.han .it{display:block;margin:2px 0 2px 11em}
.rm{border:1px dashed #333}
.flip{border:2px solid #000}
sup{font-size:.7em;color:#444}
table.meta{border-collapse:collapse;font-size:.9em}
table.meta td,table.meta th{border:1px solid #ddd;padding:2px 6px}
"""


def _rgba(value: float, scale: float, signed: bool) -> str:
    """Background colour: blue intensity for positive values, red for negative (signed only)."""
    if scale <= 0 or not math.isfinite(value):
        return "transparent"
    a = min(abs(value) / scale, 1.0) * 0.85
    if signed and value < 0:
        return f"rgba(214,39,40,{a:.3f})"
    return f"rgba(31,119,180,{a:.3f})"


def _selection_score(model: ModelResults, ranking: str) -> np.ndarray:
    """Unfaithfulness per document: gap fraction; 1 + frac when the ranking never flips but the
    minimum does; NaN when undefined (n < 2 or the decision can never flip)."""
    res = model.results
    n = res.docs.seq_len
    score = np.full(n.shape, np.nan)
    curve = res.rankings.get(ranking)
    if curve is not None and curve.gap_frac is not None:
        score = np.asarray(curve.gap_frac, np.float64).copy()
        never = (curve.k == -1) & (res.min_flip.k > 0)
        score[never] = 1.0 + res.min_flip.frac[never]
    score[n < 2] = np.nan
    return score


def select_documents(
    model: ModelResults, *, num_each: int = 2, ranking: str = "attention"
) -> tuple[list[int], list[int]]:
    """Row indices of the most and least faithful documents by `ranking`'s optimality gap.

    Most faithful: smallest (k − k_min) / n, ties broken by more items; least faithful: largest,
    counting "never flips while the minimum does" as worst. Without an optimality gap (non-affine
    head) the fraction removed is used instead. Returns (most, least), disjoint.
    """
    score = _selection_score(model, ranking)
    if np.all(np.isnan(score)):
        frac = np.asarray(model.curve(ranking).frac, np.float64)
        score = np.where((frac > 0) & model.included, frac, np.nan)
    ok = np.flatnonzero(~np.isnan(score))
    n = model.results.docs.seq_len
    most = ok[np.lexsort((-n[ok], score[ok]))][:num_each].tolist()
    least = [i for i in ok[np.lexsort((-n[ok], -score[ok]))] if i not in most][:num_each]
    return most, least


def _item_texts(model: ModelResults, row: int) -> list[str]:
    n = int(model.results.docs.seq_len[row])
    doc_id = int(model.results.docs.doc_id[row])
    if model.documents is not None:
        for d in model.documents:
            if int(d.get("doc_index", -2)) == doc_id:
                items = list(d.get("items", []))
                if len(items) == n:
                    return [str(t) for t in items]
    return [f"[item {i + 1}]" for i in range(n)]


def _class_name(model: ModelResults, c: int) -> str:
    if model.class_names is not None and 0 <= c < len(model.class_names):
        return f"{model.class_names[c]} ({c})"
    return str(c)


def _document_html(model: ModelResults, row: int, heading: str) -> str:
    res, docs = model.results, model.results.docs
    n = int(docs.seq_len[row])
    start = int(model.item_offsets()[row])
    alpha = np.asarray(res.items.alpha[start : start + n], np.float64)
    grad = np.asarray(res.items.gradient[start : start + n], np.float64)
    shades = {"attention": (alpha, False), "gradient": (grad, True)}
    shades["grad_x_attention"] = (grad * alpha, True)
    texts = _item_texts(model, row)
    doc_id = int(docs.doc_id[row])
    label = None
    if model.documents is not None:
        for d in model.documents:
            if int(d.get("doc_index", -2)) == doc_id:
                label = d.get("label")
    meta = [
        ("document", str(doc_id)),
        ("items (n)", str(n)),
        ("predicted", _class_name(model, int(docs.predicted[row]))),
    ]
    if label is not None:
        meta.append(("gold label", _class_name(model, int(label))))
    k_min = int(res.min_flip.k[row]) if res.min_flip is not None else None
    flips = {}
    for name in (*shades, "random0"):
        if name in res.rankings:
            flips[name] = int(res.rankings[name].k[row])
    for name, k in flips.items():
        meta.append((f"{ranking_label(name)}: removals to flip", "never" if k < 0 else str(k)))
    if k_min is not None:
        meta.append(("exact minimum", "never" if k_min < 0 else str(k_min)))
    parts = [f'<div class="doc {"han" if model.arch.startswith("han") else "flan"}">']
    parts.append(f"<h3>{html.escape(heading)}</h3><table class='meta'>")
    parts += [f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in meta]
    parts.append("</table>")
    for name, (vals, signed) in shades.items():
        scale = float(np.max(np.abs(vals))) if vals.size else 0.0
        steps: dict[int, int] = {}
        k = flips.get(name, -1)
        if name in res.items.curves and k != 0:
            order = res.items.curves[name].order[start : start + n]
            upto = k if k > 0 else n
            steps = {int(p): s + 1 for s, p in enumerate(order[:upto])}
        parts.append(
            f'<div class="row"><span class="lab">{html.escape(ranking_label(name))}</span>'
        )
        for i, text in enumerate(texts):
            cls = "it"
            sup = ""
            if i in steps:
                cls += " flip" if k > 0 and steps[i] == k else " rm"
                sup = f"<sup>{steps[i]}</sup>"
            title = f"{ranking_label(name)} = {vals[i]:.4g}"
            parts.append(
                f'<span class="{cls}" style="background:{_rgba(vals[i], scale, signed)}" '
                f'title="{html.escape(title)}">{html.escape(text)}{sup}</span> '
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def write_document_view(
    model: ModelResults,
    path: str,
    *,
    num_each: int = 2,
    ranking: str = "attention",
    rows: Sequence[int] | None = None,
) -> str:
    """Writes a self-contained HTML page (inline CSS) of a few documents of `model`.

    By default shows the `num_each` most and least faithful documents by `ranking`'s optimality
    gap (`select_documents`); pass `rows` (indices into the results) to choose. Each item is shaded
    by attention (blue), gradient and gradient × attention (blue positive, red negative); items a
    ranking removes before its first flip carry a dashed border and their removal step, and the
    flip-causing item a solid border. All text is HTML-escaped. Returns `path`.
    """
    if model.results.items is None:
        raise ValueError(
            f"results of {model.label} have no per-item arrays; run the erasure tests with "
            "ErasureConfig(store_item_arrays=True)."
        )
    if rows is None:
        most, least = select_documents(model, num_each=num_each, ranking=ranking)
        chosen = [(r, "most faithful") for r in most] + [(r, "least faithful") for r in least]
    else:
        chosen = [(int(r), "selected") for r in rows]
    title = f"Documents of {model.label}"
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append(
        "<p>Shading: attention weight (blue); gradient of the predicted-class probability with "
        "respect to each weight and gradient × attention (blue positive, red negative). Dashed "
        "border + number: removed by that ranking before the first decision flip, in removal "
        "order; solid border: the removal that flips the decision.</p>"
    )
    if not chosen:
        body.append("<p>No document with more than one item flips; nothing to show.</p>")
    for r, kind in chosen:
        body.append(_document_html(model, r, f"{kind} ({ranking_label(ranking)})"))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    atomic_write_text(path, page)
    return path


def document_rows(model: ModelResults) -> Mapping[int, int]:
    """doc_id -> row index into the results."""
    return {int(d): i for i, d in enumerate(model.results.docs.doc_id)}
