"""`SuiteResults`: the typed results of `run_suite`, and their flat form in results.npz / shards.

Per-instance arrays are `[docs]`; per-item arrays are ragged `[items]`: the valid entries of every
document concatenated in document order (each document contributes `seq_len` entries: values
over its valid positions in position order, or per-k curves for k = 1..seq_len).

String keys exist only in files: `to_flat` / `from_flat` map a `SuiteResults` to and from the
flat `{"rank_attention_k": ..., "items/alpha": ...}` dict stored in results.npz and the shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

# Single-erasure targets: name -> (ranking giving the ordering, position in that ordering).
SINGLE_TARGETS = {
    "top": ("attention", 0),
    "second": ("attention", 1),
    "lowest": ("attention_asc", 0),
    "second_lowest": ("attention_asc", 1),
    "grad_top": ("gradient", 0),
    "grad_second": ("gradient", 1),
    "gxa_top": ("grad_x_attention", 0),
    "gxa_second": ("grad_x_attention", 1),
}
# Random comparison items: name -> the top item it is compared with.
RANDOM_TARGETS = {"rand": "top", "grad_rand": "grad_top", "gxa_rand": "gxa_top"}


class Comparison(NamedTuple):
    """A top item against a random other item (Table 2, delta JS): labels and target names."""

    label: str  # the ranking choosing the top item
    top: str
    rand: str
    prefix: str  # of the delta columns in the flat form ("grad_" -> grad_delta_js)


COMPARISONS = (
    Comparison("attention", "top", "rand", ""),
    Comparison("gradient", "grad_top", "grad_rand", "grad_"),
    Comparison("grad_x_attention", "gxa_top", "gxa_rand", "gxa_"),
)


class DocumentStats(NamedTuple):
    """Per-document facts `[docs]`."""

    doc_id: np.ndarray  # int64
    seq_len: np.ndarray  # int32, valid items
    predicted: np.ndarray  # int32, the full model's prediction yhat
    predicted_head: np.ndarray  # int32, argmax of the head on the unmodified weights
    prediction_mismatch: np.ndarray  # bool, predicted != predicted_head
    js_clipped: np.ndarray  # int32, single-erasure JS values below 0 before clipping
    kl_clipped: np.ndarray  # int32, same for KL
    p_predicted: np.ndarray  # float, p(yhat) of the unmodified head


class SingleErasure(NamedTuple):
    """Zeroing one chosen item per document, `[docs]`; -1 / NaN where the item does not exist."""

    index: np.ndarray  # int32, the item's position
    flip: np.ndarray  # int32, the new decision when it differs from yhat, else -1
    weight: np.ndarray  # float, the item's attention weight
    js: np.ndarray  # float, JS divergence of the output distributions
    kl: np.ndarray  # float, KL divergence


class RemovalCurve(NamedTuple):
    """Removing items in one ranking's order until the decision flips, `[docs]` (-1: never).

    Fields that the config did not ask for are None.
    """

    k: np.ndarray  # int32, items removed at the first flip
    gap: np.ndarray | None  # int32, k - k_min (exact minimum flip set)
    frac: np.ndarray  # float, k / n
    probmass: np.ndarray  # float, attention mass removed at the flip
    gap_frac: np.ndarray | None  # float, (k - k_min) / n
    aopc_comp: np.ndarray | None  # float, AOPC comprehensiveness over all k
    aopc_comp_frac: np.ndarray | None  # float, over the config's fractions of n
    aopc_suff: np.ndarray | None  # float, AOPC sufficiency over all k
    aopc_suff_frac: np.ndarray | None


class MinimumFlipSet(NamedTuple):
    """Exact smallest number of removed items that flips the decision, `[docs]` (-1: never)."""

    k: np.ndarray  # int32
    frac: np.ndarray  # float64, k / n (-1 when never)


class ItemCurve(NamedTuple):
    """One ranking's per-k arrays `[items]` (k = 1..seq_len per document); None when not stored."""

    comp: np.ndarray | None  # p(yhat) drop with the top k items removed
    suff: np.ndarray | None  # p(yhat) drop with only the top k items kept
    order: np.ndarray  # int32, the position removed at step k


class ItemArrays(NamedTuple):
    """Per-item arrays `[items]` (valid positions of every document, in order)."""

    alpha: np.ndarray
    gradient: np.ndarray
    single_js: np.ndarray
    single_kl: np.ndarray
    single_flip: np.ndarray  # int32, new decision when zeroing this item flips it, else -1
    curves: dict[str, ItemCurve]  # ranking name -> its curves


class SuiteResults(NamedTuple):
    """Everything `run_suite` computes for a set of documents.

    `extra` holds per-document columns added by callers (`evaluate_run` adds "label" and
    "logits"), stored after the suite's own columns in the flat form.
    """

    docs: DocumentStats
    singles: dict[str, SingleErasure]  # SINGLE_TARGETS, RANDOM_TARGETS, then "random{i}_first"
    rankings: dict[str, RemovalCurve]  # built-in rankings, extras, then "random{i}"
    min_flip: MinimumFlipSet | None
    items: ItemArrays | None
    extra: dict[str, np.ndarray]

    @property
    def num_docs(self) -> int:
        return int(self.docs.doc_id.shape[0])

    @property
    def included(self) -> np.ndarray:
        """bool `[docs]`: the instances every statistic uses (more than one item)."""
        return self.docs.seq_len > 1

    def delta(self, comparison: Comparison, field: str = "js") -> np.ndarray:
        """`[docs]` top minus random item's `field` ("js" or "weight")."""
        return getattr(self.singles[comparison.top], field) - getattr(
            self.singles[comparison.rand], field
        )

    def item_offsets(self) -> np.ndarray:
        """int64 `[docs + 1]`: document i's items are `items.*[offsets[i]:offsets[i + 1]]`."""
        return np.concatenate([[0], np.cumsum(self.docs.seq_len.astype(np.int64))])

    def with_extra(self, **columns: np.ndarray) -> SuiteResults:
        """A copy with per-document `columns` added to `extra`."""
        return self._replace(extra={**self.extra, **columns})


def random_ranking_names(rankings: Sequence[str]) -> list[str]:
    """The random permutation rankings ("random0", ...) among `rankings`."""
    return [n for n in rankings if n.startswith("random") and n[6:].isdigit()]


# ---------------------------------------------------------------------------------------------
# Selecting and joining documents.


def _map_docs(res: SuiteResults, fn_docs, fn_items) -> SuiteResults:
    """Applies `fn_docs` to every per-document array and `fn_items` to every per-item array."""

    def each(tup):
        return None if tup is None else type(tup)(*(None if x is None else fn_docs(x) for x in tup))

    items = res.items
    if items is not None:
        curves = {
            name: ItemCurve(*(None if x is None else fn_items(x) for x in c))
            for name, c in items.curves.items()
        }
        items = ItemArrays(*(fn_items(x) for x in items[:5]), curves)
    return SuiteResults(
        docs=each(res.docs),
        singles={k: each(v) for k, v in res.singles.items()},
        rankings={k: each(v) for k, v in res.rankings.items()},
        min_flip=each(res.min_flip),
        items=items,
        extra={k: fn_docs(v) for k, v in res.extra.items()},
    )


def take_documents(res: SuiteResults, rows: np.ndarray) -> SuiteResults:
    """The documents at positions `rows` (in that order); item arrays regrouped per document."""
    rows = np.asarray(rows, dtype=np.int64)
    seq = np.asarray(res.docs.seq_len, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(seq)[:-1]]).astype(np.int64)
    seg = [np.arange(starts[r], starts[r] + seq[r]) for r in rows]
    item_idx = np.concatenate(seg) if seg else np.zeros(0, np.int64)
    return _map_docs(res, lambda x: np.asarray(x)[rows], lambda x: np.asarray(x)[item_idx])


def concatenate_results(parts: Sequence[SuiteResults]) -> SuiteResults:
    """Joins the results of several batches (same config and head type) into one."""
    if not parts:
        raise ValueError("nothing to concatenate.")
    if len(parts) == 1:
        return parts[0]
    keys = list(to_flat(parts[0]))
    for p in parts[1:]:
        other = list(to_flat(p))
        if set(other) != set(keys):
            raise ValueError(
                f"results have different keys: {sorted(set(other) ^ set(keys))[:10]} "
                "(were they produced with the same config and head type?)."
            )
    return from_flat({k: np.concatenate([np.asarray(to_flat(p)[k]) for p in parts]) for k in keys})


# ---------------------------------------------------------------------------------------------
# The flat form of results.npz and the shards.

_DOC_HEAD = ("predicted", "predicted_head", "prediction_mismatch", "js_clipped", "kl_clipped")
_ITEM_FIELDS = ("alpha", "gradient", "single_js", "single_kl", "single_flip")


def to_flat(res: SuiteResults) -> dict[str, np.ndarray]:
    """The flat dict of results.npz, keys in the order the files have always used."""
    d = res.docs
    out: dict[str, np.ndarray] = {k: getattr(d, k) for k in (*_DOC_HEAD, "p_predicted")}
    for name, single in res.singles.items():
        for col in ("index", "flip", "weight", "js", "kl"):
            out[f"single_{name}_{col}"] = getattr(single, col)
    for comp in COMPARISONS:
        out[f"{comp.prefix}delta_alpha"] = res.delta(comp, "weight")
        out[f"{comp.prefix}delta_js"] = res.delta(comp, "js")
    if res.min_flip is not None:
        out["k_min"], out["k_min_frac"] = res.min_flip
    for name, curve in res.rankings.items():
        for col, value in zip(RemovalCurve._fields, curve, strict=True):
            if value is not None:
                out[f"rank_{name}_{col}"] = value
    if res.items is not None:
        for col in _ITEM_FIELDS:
            out[f"items/{col}"] = getattr(res.items, col)
        for name, c in res.items.curves.items():
            for col, value in (("comp", c.comp), ("suff", c.suff), ("order", c.order)):
                if value is not None:
                    out[f"items/{col}_{name}"] = value
    out["doc_id"], out["seq_len"] = d.doc_id, d.seq_len
    out.update(res.extra)
    return out


def _names_between(keys: Sequence[str], prefix: str, suffix: str) -> list[str]:
    return [
        k[len(prefix) : -len(suffix)] for k in keys if k.startswith(prefix) and k.endswith(suffix)
    ]


def from_flat(flat: Mapping[str, np.ndarray]) -> SuiteResults:
    """A `SuiteResults` from the flat dict of results.npz / a shard (per-item arrays optional).

    Keys that are not suite columns (e.g. "label", "logits") go to `extra`, in their order.
    """
    flat = {k: np.asarray(v) for k, v in flat.items()}
    keys = list(flat)
    used = set()

    def take(key: str, optional: bool = False):
        if key not in flat:
            if optional:
                return None
            raise ValueError(f"erasure results lack {key!r}; were they written by run_suite?")
        used.add(key)
        return flat[key]

    docs = DocumentStats(*(take(f) for f in DocumentStats._fields))
    singles = {
        name: SingleErasure(*(take(f"single_{name}_{col}") for col in SingleErasure._fields))
        for name in _names_between(keys, "single_", "_index")
    }
    rankings = {
        name: RemovalCurve(
            *(take(f"rank_{name}_{col}", optional=col != "k") for col in RemovalCurve._fields)
        )
        for name in _names_between(keys, "rank_", "_k")
    }
    min_flip = None
    if "k_min" in flat:
        min_flip = MinimumFlipSet(take("k_min"), take("k_min_frac"))
    items = None
    if "items/alpha" in flat:
        names = [k[len("items/order_") :] for k in keys if k.startswith("items/order_")]
        curves = {
            name: ItemCurve(
                take(f"items/comp_{name}", True),
                take(f"items/suff_{name}", True),
                take(f"items/order_{name}"),
            )
            for name in names
        }
        items = ItemArrays(*(take(f"items/{col}") for col in _ITEM_FIELDS), curves)
    for comp in COMPARISONS:
        used.update((f"{comp.prefix}delta_alpha", f"{comp.prefix}delta_js"))
    extra = {k: v for k, v in flat.items() if k not in used}
    return SuiteResults(docs, singles, rankings, min_flip, items, extra)
