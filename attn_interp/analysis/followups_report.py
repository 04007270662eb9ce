"""Report sections of the follow-up tests (Jain & Wallace 2019; Wiegreffe & Pinter 2019): tables,
figures and the papers' claims re-tested in sentences, from `evaluate_followups` outputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np

from attn_interp.analysis.figures import _grid, _save, _style
from attn_interp.analysis.model_results import ModelResults, ranking_label
from attn_interp.analysis.tables import Table
from attn_interp.followups.summary import FollowupSummary, eps_label

# Verdict thresholds of the sentences (stated in each sentence).
WEAK_TAU = 0.5  # "weak correlation": mean tau below this
SMALL_TVD = 0.05  # "the output barely changes": median TVD below this
SMALL_DROP = 2.0  # uniform weights "cost little": accuracy drop below this many points
COMMON = 0.5  # "often": in at least half of the documents
_MAX_ATTENTION_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass(frozen=True)
class FollowupEntry:
    """One model's erasure results and its follow-up results (`load_followups`)."""

    model: ModelResults
    columns: Mapping[str, np.ndarray]
    summary: FollowupSummary


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def agreement_table(entries: Sequence[FollowupEntry]) -> Table:
    """Kendall tau-b of attention against each ranking, per model (n > 1)."""
    labels = ()
    rows = []
    for e in entries:
        for name, a in e.summary.agreement.items():
            labels = tuple(a.mean_overlap)
            rows.append(
                (
                    e.model.label,
                    ranking_label(name),
                    a.documents,
                    a.mean_tau,
                    a.median_tau,
                    _pct(a.share_significant),
                    _pct(a.share_significant_positive),
                    *[a.mean_overlap[k] for k in labels],
                )
            )
    cols = ("model", "ranking", "docs", "mean τ", "median τ", "significant %", "sig. positive %")
    return Table(
        "Rank agreement of attention with other importance rankings (Kendall τ-b)",
        cols + tuple(f"overlap {k}" for k in labels),
        tuple(rows),
        note="Documents with n > 1 where τ is defined; significance: two-sided test of τ = 0 at "
        "5%, normal approximation of τ-b's null variance with ties. Overlap: share of "
        "attention's top k among the ranking's top k (documents with n > k).",
        percent_columns=("significant %", "sig. positive %"),
    )


def baseline_table(entries: Sequence[FollowupEntry]) -> Table:
    """Accuracy and output change with replaced weights, per model."""
    rows = []
    for e in entries:
        rows.append(
            (e.model.label, "model's attention", _pct(e.summary.accuracy), None, None, None, None)
        )
        for name, b in e.summary.baselines.items():
            rows.append(
                (
                    e.model.label,
                    name,
                    _pct(b.accuracy),
                    _pct(b.share_changed),
                    b.median_tvd,
                    b.median_js,
                    b.mean_weight_js,
                )
            )
    return Table(
        "The head on replacement weights (uniform, permuted, another seed's attention)",
        (
            "model",
            "weights",
            "accuracy %",
            "decision changed %",
            "median TVD",
            "median JS",
            "mean JS of weights",
        ),
        tuple(rows),
        note="Accuracy over every test document; the other columns over documents with n > 1. "
        "Replacement at inference time on the trained model.",
        percent_columns=("accuracy %", "decision changed %"),
    )


def adversary_table(entries: Sequence[FollowupEntry]) -> Table:
    """Max JS of adversarial attention within each output budget, per model."""
    rows = []
    for e in entries:
        for a in e.summary.adversary:
            q = a.quantiles or [None] * 5
            rows.append(
                (
                    e.model.label,
                    a.epsilon,
                    a.documents,
                    a.median_js,
                    q[0],
                    q[4],
                    _pct(a.share_at_least_threshold),
                    _pct(a.share_found),
                )
            )
    return Table(
        "Adversarial attention: max JS(α, α̃) with TVD(output) ≤ ε",
        (
            "model",
            "ε",
            "docs",
            "median max JS",
            "10% quantile",
            "90% quantile",
            "JS ≥ 0.5 %",
            "found %",
        ),
        tuple(rows),
        note="Documents with n > 1; JS in nats (at most ln 2 = 0.693). Found: a verified "
        "adversary with JS > 0 (else α itself, JS 0).",
        percent_columns=("JS ≥ 0.5 %", "found %"),
    )


def figure_tau(entries: Sequence[FollowupEntry], out_dir: str) -> str:
    """Histograms of Kendall τ per ranking, one panel per model."""
    with matplotlib.rc_context(_style()):
        fig, axes = _grid(len(entries))
        for ax, e in zip(axes, entries, strict=False):
            inc = e.columns["seq_len"] > 1
            for name in e.summary.agreement:
                tau = np.asarray(e.columns[f"tau_{name}"], np.float64)[inc]
                tau = tau[np.isfinite(tau)]
                ax.hist(
                    tau, bins=np.linspace(-1, 1, 41), histtype="step", label=ranking_label(name)
                )
            ax.set_title(e.model.label)
            ax.set_xlabel("Kendall τ-b with attention")
            ax.set_ylabel("documents")
            ax.legend(fontsize=8)
        return _save(fig, out_dir, "followups_tau")


def figure_adversary(entries: Sequence[FollowupEntry], out_dir: str, epsilon: float) -> str:
    """Jain & Wallace's Figure 5/6 form: max JS of the adversary, by the document's max attention
    (violins over bins of max attention), one panel per model."""
    lbl = eps_label(epsilon)
    with matplotlib.rc_context(_style()):
        fig, axes = _grid(len(entries))
        for ax, e in zip(axes, entries, strict=False):
            inc = e.columns["seq_len"] > 1
            js = np.asarray(e.columns[f"adv_js_{lbl}"], np.float64)[inc]
            offsets = np.concatenate([[0], np.cumsum(e.columns["seq_len"])])
            alpha = e.columns["items/alpha"]
            peak = np.array(
                [alpha[a:b].max() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            )[inc]
            groups, names = [], []
            edges = _MAX_ATTENTION_BINS
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                sel = (peak > lo) & (peak <= hi)
                if sel.sum() >= 2:
                    groups.append(js[sel])
                    names.append(f"({lo:.2f}, {hi:.2f}]\n{sel.sum()} docs")
            if groups:
                ax.violinplot(groups, orientation="horizontal", showmedians=True)
                ax.set_yticks(range(1, len(groups) + 1), names, fontsize=7)
            ax.set_xlim(0, 0.7)
            ax.set_xlabel(f"max JS(α, α̃) within TVD ≤ {epsilon:g}")
            ax.set_ylabel("max attention")
            ax.set_title(e.model.label)
        return _save(fig, out_dir, f"followups_adversary_{lbl}")


def claims(entries: Sequence[FollowupEntry]) -> dict[str, list[str]]:
    """The follow-up papers' claims re-tested per model, as sentences, keyed by section."""
    out: dict[str, list[str]] = {"agreement": [], "baselines": [], "adversary": []}
    for e in entries:
        name = e.model.label
        s = e.summary
        for rank in ("gradient", "leave_one_out"):
            a = s.agreement.get(rank)
            if a is None or a.mean_tau is None:
                continue
            verdict = "holds" if a.mean_tau < WEAK_TAU else "does not hold"
            out["agreement"].append(
                f"{name}: Kendall τ between attention and the {ranking_label(rank)} ranking has "
                f"mean {a.mean_tau:.2f} (median {a.median_tau:.2f}; significant at 5% in "
                f"{100 * a.share_significant:.0f}% of {a.documents} documents). Jain & Wallace's "
                f"claim that attention correlates only weakly with other importance measures "
                f"(here: mean τ < {WEAK_TAU}) {verdict}."
            )
        perm = s.baselines.get("permuted")
        if perm is not None and perm.median_tvd is not None:
            verdict = "holds" if perm.median_tvd < SMALL_TVD else "does not hold"
            out["baselines"].append(
                f"{name}: randomly permuting the attention weights changes the decision in "
                f"{100 * perm.share_changed:.1f}% of documents, median output TVD "
                f"{perm.median_tvd:.3f}. Jain & Wallace's claim that permuted attention often "
                f"leaves the output nearly unchanged (here: median TVD < {SMALL_TVD}) {verdict}."
            )
        uni = s.baselines.get("uniform")
        if uni is not None and uni.accuracy is not None and s.accuracy is not None:
            drop = 100 * (s.accuracy - uni.accuracy)
            verdict = "matters little" if drop < SMALL_DROP else "matters"
            out["baselines"].append(
                f"{name}: uniform weights over the valid items give {100 * uni.accuracy:.1f}% "
                f"accuracy against {100 * s.accuracy:.1f}% with the model's attention (drop "
                f"{drop:.1f} points; decisions changed in {100 * uni.share_changed:.1f}%). In "
                f"Wiegreffe & Pinter's uniform-baseline test attention {verdict} for this model "
                f"(criterion: a drop below {SMALL_DROP} points; here at inference time, not a "
                "model retrained with frozen uniform weights)."
            )
        seed = s.baselines.get("other_seed")
        adv0 = s.adversary[0] if s.adversary else None
        if seed is not None and seed.mean_weight_js is not None and adv0 is not None:
            further = adv0.median_js is not None and adv0.median_js > seed.mean_weight_js
            out["baselines"].append(
                f"{name}: another seed's attention differs from this model's by JS "
                f"{seed.mean_weight_js:.3f} on average and moves the output by median TVD "
                f"{seed.median_tvd:.3f}; the adversary within ε = {adv0.epsilon:g} reaches median "
                f"JS {adv0.median_js:.3f}, {'further' if further else 'no further'} than the seed "
                "variance that Wiegreffe & Pinter propose as the yardstick."
            )
        for a in s.adversary:
            if a.share_at_least_threshold is None:
                continue
            verdict = "holds" if a.share_at_least_threshold >= COMMON else "does not hold"
            out["adversary"].append(
                f"{name}: within output TVD ≤ {a.epsilon:g}, an adversarial attention with JS ≥ "
                f"{a.threshold:g} from the original exists for {100 * a.share_at_least_threshold:.1f}% "
                f"of {a.documents} documents (median max JS {a.median_js:.3f} nats; ln 2 = 0.693 "
                f"is the maximum). Jain & Wallace's claim that very different attention with "
                f"nearly the same output is easy to find (here: in at least half of the "
                f"documents) {verdict}."
            )
    return out


def followup_sections(
    entries: Sequence[FollowupEntry], fig_dir: str, explorer_links: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, list[Any]]]:
    """The report sections (heading, items) of the follow-up tests, in `write_report`'s item
    format (Table, str, ("fig", path), ("list", sentences), ("links", [(label, href)]))."""
    if not entries:
        return []
    said = claims(entries)
    sections = [
        (
            "Rank agreement with other importance measures (Jain & Wallace §3)",
            [
                ("list", said["agreement"]),
                agreement_table(entries),
                ("fig", figure_tau(entries, fig_dir)),
            ],
        ),
        (
            "Replacing the attention weights (Wiegreffe & Pinter §3–4, Jain & Wallace §4.1)",
            [("list", said["baselines"]), baseline_table(entries)],
        ),
    ]
    eps = entries[0].summary.adversary[0].epsilon if entries[0].summary.adversary else None
    adv_items: list[Any] = [("list", said["adversary"]), adversary_table(entries)]
    if eps is not None:
        adv_items.append(("fig", figure_adversary(entries, fig_dir, eps)))
    sections.append(("Adversarial attention (Jain & Wallace §4.2)", adv_items))
    if explorer_links:
        sections.append(("Document explorer", [("links", list(explorer_links))]))
    return sections
