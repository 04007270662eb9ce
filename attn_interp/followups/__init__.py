"""The follow-up literature's attention tests on the erasure engine's explicit-attention interface.

* rank agreement between attention and other importance rankings (Jain & Wallace 2019, §3):
  `rank_agreement`, `kendall_tau_b`, `top_k_overlap`;
* baselines for the weights: uniform, permuted, another seed's (Wiegreffe & Pinter 2019 §3-4,
  Jain & Wallace §4.1): `weight_baselines`;
* adversarial attention within an output budget (Jain & Wallace §4.2): `adversarial_attention`.

`run_followups` runs all three on one batch; `evaluate_followups` on a trained run's test split
(the main job's stage after erasure). Settings: `FollowupConfig`.
"""

from attn_interp.followups.adversarial import AdversaryResult, adversarial_attention
from attn_interp.followups.agreement import Agreement, kendall_tau_b, rank_agreement, top_k_overlap
from attn_interp.followups.batch import FollowupResults, run_followups
from attn_interp.followups.config import FollowupConfig
from attn_interp.followups.scores import RankingScores, ranking_scores
from attn_interp.followups.weight_baselines import BaselineResult, weight_baselines

__all__ = [
    "AdversaryResult",
    "Agreement",
    "BaselineResult",
    "FollowupConfig",
    "FollowupResults",
    "RankingScores",
    "adversarial_attention",
    "kendall_tau_b",
    "rank_agreement",
    "ranking_scores",
    "run_followups",
    "top_k_overlap",
    "weight_baselines",
]
