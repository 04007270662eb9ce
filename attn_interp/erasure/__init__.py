"""Erasure engine: zero attention weights, renormalise, re-run the classifier head.

Public API: `ErasureConfig`, `AffineParams`, `run_suite` (returns a `SuiteResults`), `summarize`,
`write_outputs`, `concatenate_results`, `to_flat` / `from_flat` (the results.npz form),
`js_divergence`, `kl_divergence`, `minimum_flip_set`.
"""

from attn_interp.erasure.config import BUILTIN_RANKINGS, AffineParams, ErasureConfig
from attn_interp.erasure.divergence import js_divergence, kl_divergence
from attn_interp.erasure.min_flip import minimum_flip_set
from attn_interp.erasure.outputs import write_outputs
from attn_interp.erasure.results import (
    COMPARISONS,
    ItemArrays,
    ItemCurve,
    MinimumFlipSet,
    RemovalCurve,
    SingleErasure,
    SuiteResults,
    concatenate_results,
    from_flat,
    to_flat,
)
from attn_interp.erasure.suite import run_suite
from attn_interp.erasure.summary import summarize

__all__ = [
    "BUILTIN_RANKINGS",
    "COMPARISONS",
    "ItemArrays",
    "ItemCurve",
    "MinimumFlipSet",
    "RemovalCurve",
    "SingleErasure",
    "SuiteResults",
    "from_flat",
    "to_flat",
    "AffineParams",
    "ErasureConfig",
    "concatenate_results",
    "js_divergence",
    "kl_divergence",
    "minimum_flip_set",
    "run_suite",
    "summarize",
    "write_outputs",
]
