"""`summarize`: JSON-ready statistics of a `SuiteResults` (paper_notes.md §5-8 and §12)."""

from __future__ import annotations

import math

import numpy as np

from attn_interp.erasure.results import COMPARISONS, SuiteResults, random_ranking_names


def _num(x) -> float | None:
    """A JSON-safe float (None for NaN / empty)."""
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _mean(x: np.ndarray) -> float | None:
    return _num(np.mean(x)) if x.size else None


def _percent(x: np.ndarray) -> float | None:
    return _num(100.0 * np.mean(x)) if x.size else None


def _median(x: np.ndarray) -> float | None:
    return _num(np.median(x)) if x.size else None


def compare_removal_counts(k_a: np.ndarray, k_b: np.ndarray) -> dict[str, np.ndarray]:
    """Which of two rankings flips sooner, per instance; -1 means never flips.

    Returns bool arrays: both_never, a_fewer, b_fewer, tie.
    """
    a_never, b_never = k_a == -1, k_b == -1
    return {
        "both_never": a_never & b_never,
        "a_fewer": ~a_never & (b_never | (k_a < k_b)),
        "b_fewer": ~b_never & (a_never | (k_b < k_a)),
        "tie": ~a_never & ~b_never & (k_a == k_b),
    }


def decision_flip_shares(f_top: np.ndarray, f_rand: np.ndarray) -> dict[str, float | None]:
    """Table 2 cells in percent: which of the top and the random item flips the decision."""
    return {
        "both": _percent(f_top & f_rand),
        "only_top": _percent(f_top & ~f_rand),
        "only_random": _percent(~f_top & f_rand),
        "neither": _percent(~f_top & ~f_rand),
    }


def _counts(results: SuiteResults) -> dict:
    seq_len = np.asarray(results.docs.seq_len)
    inc = seq_len > 1
    docs = results.docs
    return {
        "counts": {
            "total": int(seq_len.size),
            "included_n_gt_1": int(inc.sum()),
            "excluded_n_eq_1": int((seq_len == 1).sum()),
            "excluded_empty": int((seq_len == 0).sum()),
        },
        "prediction_mismatch": {
            "all": int(np.sum(docs.prediction_mismatch & (seq_len > 0))),
            "included": int(np.sum(docs.prediction_mismatch & inc)),
        },
        "negative_divergences_clipped": {
            "js": int(np.sum(docs.js_clipped[inc])),
            "kl": int(np.sum(docs.kl_clipped[inc])),
        },
    }


def _comparisons(results: SuiteResults, inc: np.ndarray) -> dict:
    table2, neg_js = {}, {}
    for comp in COMPARISONS:
        f_top = np.asarray(results.singles[comp.top].flip)[inc] != -1
        f_rand = np.asarray(results.singles[comp.rand].flip)[inc] != -1
        table2[comp.label] = decision_flip_shares(f_top, f_rand)
        neg_js[comp.label] = _mean(results.delta(comp)[inc] < 0)
    return {"table2_percent": table2, "delta_js_negative_share": neg_js}


def _pairwise(k: dict[str, np.ndarray], n_inc: int) -> dict:
    pairwise, not_optimal = {}, {}
    if "attention" in k:
        union = np.zeros(n_inc, bool)
        for other in ("gradient", "grad_x_attention"):
            if other not in k:
                continue
            c = compare_removal_counts(k["attention"], k[other])
            denom = n_inc - int(c["both_never"].sum())
            pairwise[f"attention_vs_{other}"] = {
                "denominator": denom,
                "both_never": int(c["both_never"].sum()),
                "attention_fewer": _num(c["a_fewer"].sum() / denom) if denom else None,
                "other_fewer": _num(c["b_fewer"].sum() / denom) if denom else None,
                "tie": _num(c["tie"].sum() / denom) if denom else None,
            }
            not_optimal[other] = _mean(c["b_fewer"])
            union |= c["b_fewer"]
        if len(not_optimal) == 2:
            not_optimal["gradient_or_grad_x_attention"] = _mean(union)
    return {"pairwise": pairwise, "attention_provably_not_optimal": not_optimal}


def _minimum_flip_set(results: SuiteResults, k: dict[str, np.ndarray], inc: np.ndarray) -> dict:
    k_min = np.asarray(results.min_flip.k)[inc]
    seq = np.asarray(results.docs.seq_len)[inc]
    exact: dict = {
        "never_flip_share": _mean(k_min == -1),
        "mean_fraction": _mean(k_min[k_min > 0] / seq[k_min > 0]),
        "median_fraction": _median(k_min[k_min > 0] / seq[k_min > 0]),
        "per_ranking": {},
    }
    for name, kr in k.items():
        both = (kr > 0) & (k_min > 0)
        gap = (kr - k_min)[both]
        exact["per_ranking"][name] = {
            "not_optimal_share": _mean((both & (kr > k_min)) | ((kr == -1) & (k_min > 0))),
            "optimal_share": _mean(both & (kr == k_min)),
            "mean_gap": _mean(gap),
            "median_gap": _median(gap),
            "mean_gap_fraction": _mean(gap / seq[both]),
        }
    if "attention" in k:
        exact["attention_not_optimal"] = exact["per_ranking"]["attention"]["not_optimal_share"]
    return exact


_AOPC_FIELDS = ("aopc_comp", "aopc_comp_frac", "aopc_suff", "aopc_suff_frac")


def _per_ranking(results: SuiteResults, k: dict[str, np.ndarray], inc: np.ndarray) -> dict:
    per_ranking = {}
    for name, kr in k.items():
        curve = results.rankings[name]
        flipped = kr > 0
        frac = np.asarray(curve.frac)[inc][flipped]
        mass = np.asarray(curve.probmass)[inc][flipped]
        stats = {
            "flipped": int(flipped.sum()),
            "mean_fraction": _mean(frac),
            "median_fraction": _median(frac),
            "std_fraction": _num(np.std(frac)) if frac.size else None,
            "mean_probmass": _mean(mass),
            "median_probmass": _median(mass),
        }
        for field in _AOPC_FIELDS:
            if getattr(curve, field) is not None:
                stats[field] = _mean(np.asarray(getattr(curve, field))[inc])
        per_ranking[name] = stats
    return per_ranking


def summarize(results: SuiteResults) -> dict:
    """Aggregate statistics over instances with more than one item (n = 1 and empty are counted).

    Returns a JSON-ready dict: counts, Q10 prediction mismatches, clipped divergences, never-flip
    shares, Table 2 percentages, shares of delta JS < 0, pairwise "which ranking flips sooner",
    "attention provably not optimal" (and the exact k_attention > k_min version), optimality gaps,
    AOPC and fraction / probability-mass statistics per ranking.
    """
    inc = results.included
    out = _counts(results)
    k = {name: np.asarray(c.k)[inc] for name, c in results.rankings.items()}
    out["never_flip_share"] = {name: _mean(kr == -1) for name, kr in k.items()}
    out.update(_comparisons(results, inc))
    out.update(_pairwise(k, int(inc.sum())))
    if results.min_flip is not None:
        out["minimum_flip_set"] = _minimum_flip_set(results, k, inc)
    out["per_ranking"] = per_ranking = _per_ranking(results, k, inc)
    randoms = random_ranking_names(list(k))
    if randoms:
        means = [per_ranking[n]["mean_fraction"] for n in randoms]
        means = [m for m in means if m is not None]
        out["random_average"] = {
            "mean_fraction_over_permutations": _mean_or_none(means),
            "never_flip_share_over_permutations": _mean_or_none(
                [out["never_flip_share"][n] for n in randoms]
            ),
        }
    return out


def _mean_or_none(values: list) -> float | None:
    """Mean of the non-None values, or None when there are none (e.g. no document has n > 1)."""
    kept = [v for v in values if v is not None]
    return _num(np.mean(kept)) if kept else None
