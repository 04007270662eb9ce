"""Per-document columns of the follow-up tests and their summaries (typed, JSON-serialisable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from attn_interp.followups.batch import FollowupResults
from attn_interp.followups.config import FollowupConfig

_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def overlap_labels(config: FollowupConfig) -> tuple[str, ...]:
    """Suffixes of the overlap columns: "top1", "top3", ..., "top10pct"."""
    fixed = tuple(f"top{k}" for k in config.top_k)
    return fixed + tuple(f"top{round(100 * f)}pct" for f in config.top_fractions)


def eps_label(epsilon: float) -> str:
    """Column suffix of an output budget: 0.01 -> "eps0.01"."""
    return f"eps{epsilon:g}"


def document_columns(res: FollowupResults, config: FollowupConfig) -> dict[str, np.ndarray]:
    """Flat per-document columns `[batch]` (see docs/followups.md) and ragged per-item arrays
    ("items/alpha", "items/adv_eps..."): the valid items of every document in position order,
    concatenated."""
    mask = res.mask
    out: dict[str, np.ndarray] = {"seq_len": res.seq_len, "predicted": res.predicted}
    out["items/alpha"] = np.asarray(res.alpha, np.float32)[mask]
    if res.agreement is not None:
        for j, name in enumerate(res.rankings):
            out[f"tau_{name}"] = np.asarray(res.agreement.tau[:, j], np.float32)
            out[f"p_{name}"] = np.asarray(res.agreement.p_value[:, j], np.float32)
            for c, lbl in enumerate(overlap_labels(config)):
                out[f"overlap_{name}_{lbl}"] = np.asarray(
                    res.agreement.overlap[:, j, c], np.float32
                )
    if res.baselines is not None:
        b = res.baselines
        for j, name in enumerate(b.names):
            out[f"baseline_{name}_predicted"] = np.asarray(b.predicted[:, j], np.int32)
            out[f"baseline_{name}_changed"] = np.asarray(b.changed[:, j], bool)
            for field in ("tvd", "js", "weight_js"):
                out[f"baseline_{name}_{field}"] = np.asarray(getattr(b, field)[:, j], np.float32)
    if res.adversary is not None:
        a = res.adversary
        for e, eps in enumerate(a.epsilons):
            lbl = eps_label(eps)
            out[f"adv_js_{lbl}"] = np.asarray(a.js[:, e], np.float32)
            out[f"adv_tvd_{lbl}"] = np.asarray(a.tvd[:, e], np.float32)
            out[f"adv_found_{lbl}"] = np.asarray(a.feasible[:, e], bool)
            out[f"items/adv_{lbl}"] = np.asarray(a.weights[:, e], np.float32)[mask]
    return out


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x[np.isfinite(x)]


def _mean(x) -> float | None:
    x = _finite(x)
    return float(x.mean()) if x.size else None


def _median(x) -> float | None:
    x = _finite(x)
    return float(np.median(x)) if x.size else None


def _share(flags) -> float | None:
    flags = np.asarray(flags)
    return float(flags.mean()) if flags.size else None


class AgreementSummary(NamedTuple):
    """Kendall tau-b of attention against one ranking over documents with n > 1.

    documents: documents where tau is defined; mean_tau, median_tau; share_significant: share
    with p < significance (two-sided, normal approximation with ties); share_significant_positive:
    significant and tau > 0; mean_overlap: top-k label -> mean overlap (documents with n > k).
    """

    documents: int
    mean_tau: float | None
    median_tau: float | None
    share_significant: float | None
    share_significant_positive: float | None
    mean_overlap: dict[str, float | None]


class BaselineSummary(NamedTuple):
    """One replacement of the weights. accuracy: over every document (gold labels); the rest over
    documents with n > 1: share_changed (decision differs from the original), mean/median output
    TVD and JS, mean JS between the replacement and the attention weights."""

    accuracy: float | None
    documents: int
    share_changed: float | None
    mean_tvd: float | None
    median_tvd: float | None
    mean_js: float | None
    median_js: float | None
    mean_weight_js: float | None


class AdversarySummary(NamedTuple):
    """Max JS(alpha, alpha~) within TVD <= epsilon over documents with n > 1: mean, median,
    quantiles (at 0.1, 0.25, 0.5, 0.75, 0.9), share with JS >= threshold, share where a
    verified adversary (JS > 0) was found."""

    epsilon: float
    documents: int
    mean_js: float | None
    median_js: float | None
    quantiles: list[float | None]
    threshold: float
    share_at_least_threshold: float | None
    share_found: float | None


class FollowupSummary(NamedTuple):
    """Summary of the follow-up tests of one model."""

    documents: int
    documents_n_gt_1: int
    accuracy: float | None
    agreement: dict[str, AgreementSummary]
    baselines: dict[str, BaselineSummary]
    adversary: list[AdversarySummary]

    def to_json(self) -> dict[str, Any]:
        """Nested plain dicts/lists (for summary.json)."""
        return _plain(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FollowupSummary:
        """Inverse of `to_json`."""
        return cls(
            documents=d["documents"],
            documents_n_gt_1=d["documents_n_gt_1"],
            accuracy=d["accuracy"],
            agreement={k: AgreementSummary(**v) for k, v in d["agreement"].items()},
            baselines={k: BaselineSummary(**v) for k, v in d["baselines"].items()},
            adversary=[AdversarySummary(**v) for v in d["adversary"]],
        )


def _plain(x):
    if hasattr(x, "_asdict"):
        return {k: _plain(v) for k, v in x._asdict().items()}
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def summarize_followups(
    columns: Mapping[str, np.ndarray], config: FollowupConfig, labels: np.ndarray | None = None
) -> FollowupSummary:
    """Summaries of the per-document columns (`document_columns`, concatenated over batches)."""
    n = np.asarray(columns["seq_len"])
    inc = n > 1
    predicted = np.asarray(columns["predicted"])
    accuracy = _share(predicted == labels) if labels is not None else None
    agreement = {}
    for key in columns:
        if not key.startswith("tau_"):
            continue
        name = key[len("tau_") :]
        tau = np.asarray(columns[key], np.float64)[inc]
        p = np.asarray(columns[f"p_{name}"], np.float64)[inc]
        ok = np.isfinite(tau) & np.isfinite(p)
        sig = p[ok] < config.significance
        agreement[name] = AgreementSummary(
            documents=int(ok.sum()),
            mean_tau=_mean(tau[ok]),
            median_tau=_median(tau[ok]),
            share_significant=_share(sig),
            share_significant_positive=_share(sig & (tau[ok] > 0)),
            mean_overlap={
                lbl: _mean(np.asarray(columns[f"overlap_{name}_{lbl}"])[inc])
                for lbl in overlap_labels(config)
            },
        )
    baselines = {}
    for key in columns:
        if not (key.startswith("baseline_") and key.endswith("_changed")):
            continue
        name = key[len("baseline_") : -len("_changed")]

        def col(field, name=name):
            return np.asarray(columns[f"baseline_{name}_{field}"])

        baselines[name] = BaselineSummary(
            accuracy=_share(col("predicted") == labels) if labels is not None else None,
            documents=int(inc.sum()),
            share_changed=_share(col("changed")[inc]),
            mean_tvd=_mean(col("tvd")[inc]),
            median_tvd=_median(col("tvd")[inc]),
            mean_js=_mean(col("js")[inc]),
            median_js=_median(col("js")[inc]),
            mean_weight_js=_mean(col("weight_js")[inc]),
        )
    adversary = []
    for eps in config.epsilons:
        key = f"adv_js_{eps_label(eps)}"
        if key not in columns:
            continue
        js = np.asarray(columns[key], np.float64)[inc]
        found = np.asarray(columns[f"adv_found_{eps_label(eps)}"])[inc]
        adversary.append(
            AdversarySummary(
                epsilon=float(eps),
                documents=int(inc.sum()),
                mean_js=_mean(js),
                median_js=_median(js),
                quantiles=[float(q) for q in np.quantile(js, _QUANTILES)] if js.size else [],
                threshold=config.js_threshold,
                share_at_least_threshold=_share(js >= config.js_threshold),
                share_found=_share(found),
            )
        )
    return FollowupSummary(
        documents=int(n.size),
        documents_n_gt_1=int(inc.sum()),
        accuracy=accuracy,
        agreement=agreement,
        baselines=baselines,
        adversary=adversary,
    )
