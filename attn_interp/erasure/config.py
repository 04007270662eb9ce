"""Configuration objects of the erasure engine."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

BUILTIN_RANKINGS = (
    "attention",
    "attention_asc",
    "gradient",
    "grad_x_attention",
    "leave_one_out",
    "norm",
)
RANDOM_MODES = ("paper", "code_compatible")
METHODS = ("auto", "mask", "closed_form")


class AffineParams(NamedTuple):
    """Parameters of an affine classifier head, logits = context @ kernel + bias.

    kernel: `[dim, classes]` (note: the transpose of PyTorch's `[classes, dim]` layout).
    bias: `[classes]`.
    """

    kernel: jax.Array
    bias: jax.Array


@dataclasses.dataclass(frozen=True)
class ErasureConfig:
    """Settings of one erasure run (`run_suite`).

    random_mode: "paper" draws the random comparison item r uniformly over the valid positions other
      than the compared top item; "code_compatible" reproduces the original code (quirk Q1): r uniform
      over positions 1..n-1 (0-based), independent of the top item. Both draw among the valid
      positions, wherever the mask puts them (for a prefix mask: 0..n-1), never padding.
    num_random: number of seeded random removal orderings ("random0", "random1", ...).
    seed: base seed; every document's randomness is `fold_in(key(seed), doc_id)`, so results do not
      depend on batching or chunking.
    method: "auto" (closed form when affine parameters are given, else explicit masks), "mask" or
      "closed_form".
    memory_budget_bytes: documents are processed in chunks whose estimated working set stays below it.
    aopc_fractions: fractions of items for the fixed-fraction AOPC (k = ceil(fraction * n), at least 1).
    rankings: which built-in rankings to run, a subset of `BUILTIN_RANKINGS` ("norm" needs an affine
      head and is skipped without one). Random orderings are always added.
    aopc: compute the output-probability curves along every ranking and their AOPC
      (ERASER comprehensiveness; with `sufficiency` also sufficiency).
    sufficiency: also compute the keep-only-the-top-k curves (ERASER sufficiency); needs `aopc`.
    minimum_flip_set: with an affine head, compute the exact minimum flip set and every ranking's
      optimality gap.
    store_item_arrays: also return the ragged per-item arrays (`SuiteResults.items`).
    """

    random_mode: str = "paper"
    num_random: int = 5
    seed: int = 0
    method: str = "auto"
    memory_budget_bytes: int = 2_000_000_000
    aopc_fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
    rankings: tuple[str, ...] = BUILTIN_RANKINGS
    aopc: bool = True
    sufficiency: bool = True
    minimum_flip_set: bool = True
    store_item_arrays: bool = True

    def __post_init__(self) -> None:
        if self.random_mode not in RANDOM_MODES:
            raise ValueError(
                f"random_mode={self.random_mode!r} is not supported; use one of {RANDOM_MODES}."
            )
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is not supported; use one of {METHODS}.")
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}.")
        if self.memory_budget_bytes <= 0:
            raise ValueError(
                f"memory_budget_bytes must be positive, got {self.memory_budget_bytes}."
            )
        if self.aopc and not self.aopc_fractions:
            raise ValueError("aopc_fractions must not be empty; pass aopc=False to skip AOPC.")
        if self.sufficiency and not self.aopc:
            raise ValueError("sufficiency=True needs aopc=True (sufficiency is an AOPC curve).")
        for f in self.aopc_fractions:
            if not 0.0 < f <= 1.0:
                raise ValueError(f"aopc_fractions must lie in (0, 1], got {self.aopc_fractions}.")
        unknown = [r for r in self.rankings if r not in BUILTIN_RANKINGS]
        if unknown:
            raise ValueError(
                f"unknown rankings {unknown}; built-in rankings are {BUILTIN_RANKINGS} "
                "(pass your own scores through run_suite(extra_rankings=...))."
            )
        if len(set(self.rankings)) != len(self.rankings):
            raise ValueError(f"rankings contains duplicates: {self.rankings}.")
