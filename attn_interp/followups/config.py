"""`FollowupConfig`: settings of the follow-up literature's tests (Jain & Wallace 2019, Wiegreffe &
Pinter 2019) run on the erasure engine's explicit-attention interface."""

from __future__ import annotations

import dataclasses

# Rankings compared with attention (descending scores, the erasure engine's definitions):
# "norm" needs an affine head and is skipped without one.
AGREEMENT_RANKINGS = ("gradient", "grad_x_attention", "leave_one_out", "norm")
# Replacement weights of the baselines; "other_seed" runs only when another model's weights are
# given.
BASELINES = ("uniform", "permuted", "other_seed")


@dataclasses.dataclass(frozen=True)
class FollowupConfig:
    """Settings of `run_followups` and the main job's follow-up stage.

    agreement: Kendall tau-b and top-k overlap between attention and each of `rankings`
      (Jain & Wallace section 3).
    rankings: a subset of `AGREEMENT_RANKINGS`; user scores go through `extra_rankings`.
    top_k: fixed k of the top-k overlap; documents with n <= k are left out (the overlap is 1 by
      construction there).
    top_fractions: k = ceil(fraction * n) (at least 1) of the top-k overlap.
    significance: level of the two-sided test of tau = 0 (normal approximation of tau-b's null
      variance with ties).
    baselines: run the replacement weights (uniform, permuted, another seed's) through the head
      (Wiegreffe & Pinter sections 3-4, Jain & Wallace section 4.1).
    adversarial: search adversarial attention (Jain & Wallace section 4.2).
    epsilons: output budgets of the adversary, TVD(p(alpha), p(alpha~)) <= epsilon; the first is
      the headline value (Jain & Wallace: 0.01).
    restarts: independent starts of the adversary per document and epsilon (restart 0 starts at
      alpha itself).
    steps: Adam steps of the adversary.
    learning_rate: Adam step size on the logits of alpha~.
    penalty: weight of the hinge penalty on TVD / epsilon - 1 above the target (see
      `attn_interp.followups.adversarial`).
    target_fraction: the penalty aims at TVD <= target_fraction * epsilon, inside the constraint,
      so iterates near the boundary stay feasible.
    js_threshold: an adversary "exists" for a document when its max JS is >= this (nats).
    seed: seeds the permutation and the restarts; each document's draws are
      `fold_in(key(seed), doc_id)`, independent of batching.
    memory_budget_bytes: documents are processed in blocks whose pairwise tau arrays stay below
      it.
    """

    agreement: bool = True
    rankings: tuple[str, ...] = AGREEMENT_RANKINGS
    top_k: tuple[int, ...] = (1, 3, 5)
    top_fractions: tuple[float, ...] = (0.1,)
    significance: float = 0.05
    baselines: bool = True
    adversarial: bool = True
    epsilons: tuple[float, ...] = (0.01, 0.005, 0.02)
    restarts: int = 4
    steps: int = 300
    learning_rate: float = 0.3
    penalty: float = 10.0
    target_fraction: float = 0.8
    js_threshold: float = 0.5
    seed: int = 0
    memory_budget_bytes: int = 500_000_000

    def __post_init__(self) -> None:
        unknown = [r for r in self.rankings if r not in AGREEMENT_RANKINGS]
        if unknown or len(set(self.rankings)) != len(self.rankings):
            raise ValueError(
                f"rankings must be distinct names among {AGREEMENT_RANKINGS}, got {self.rankings}."
            )
        if any(k < 1 for k in self.top_k) or any(not 0 < f <= 1 for f in self.top_fractions):
            raise ValueError(
                f"top_k must be >= 1 and top_fractions in (0, 1]; got {self.top_k}, "
                f"{self.top_fractions}."
            )
        if not 0 < self.significance < 1:
            raise ValueError(f"significance must lie in (0, 1), got {self.significance}.")
        if not self.epsilons or any(e <= 0 for e in self.epsilons):
            raise ValueError(
                f"epsilons must be a non-empty tuple of positives, got {self.epsilons}."
            )
        if self.restarts < 1 or self.steps < 1:
            raise ValueError(f"restarts and steps must be >= 1, got {self.restarts}, {self.steps}.")
        if self.learning_rate <= 0 or self.penalty <= 0:
            raise ValueError("learning_rate and penalty must be positive.")
        if not 0 < self.target_fraction <= 1:
            raise ValueError(f"target_fraction must lie in (0, 1], got {self.target_fraction}.")
        if self.memory_budget_bytes <= 0:
            raise ValueError(
                f"memory_budget_bytes must be positive, got {self.memory_budget_bytes}."
            )
