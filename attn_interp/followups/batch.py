"""`run_followups`: the three follow-up tests on one batch of attention inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.config import AffineParams
from attn_interp.followups.adversarial import AdversaryResult, adversarial_attention
from attn_interp.followups.agreement import Agreement, block_docs_for, rank_agreement
from attn_interp.followups.config import FollowupConfig
from attn_interp.followups.scores import ranking_scores
from attn_interp.followups.weight_baselines import BaselineResult, weight_baselines
from attn_interp.models.attention import masked_softmax

Head = Callable[[jax.Array, jax.Array], jax.Array]


class FollowupResults(NamedTuple):
    """Results of the follow-up tests for one batch (numpy arrays on the host).

    seq_len: int `[batch]` valid items per document.
    predicted: int `[batch]` decision on the original attention.
    rankings: names of the agreement columns (the config's rankings, then extra rankings).
    agreement: `Agreement` (tau, p_value `[batch, R]`, overlap `[batch, R, K]`) or None.
    baselines: `BaselineResult` (`[batch, M]` arrays) or None.
    adversary: `AdversaryResult` (`[batch, E]`, weights `[batch, E, items]`) or None.
    alpha: the attention `[batch, items]` (0 at padding).
    mask: bool `[batch, items]`, True at real items.
    """

    seq_len: np.ndarray
    predicted: np.ndarray
    rankings: tuple[str, ...]
    agreement: Agreement | None
    baselines: BaselineResult | None
    adversary: AdversaryResult | None
    alpha: np.ndarray
    mask: np.ndarray


@functools.partial(jax.jit, static_argnames=("head", "names", "config", "block"))
def _agreement(values, alpha, mask, predicted, extra, affine, *, head, names, config, block):
    scores = ranking_scores(values, alpha, mask, predicted, head=head, affine=affine)
    rows = [getattr(scores, name) for name in names] + [e.astype(alpha.dtype) for e in extra]
    others = jnp.stack(rows, axis=1)
    return rank_agreement(
        alpha,
        others,
        mask,
        top_k=config.top_k,
        top_fractions=config.top_fractions,
        block_docs=block,
    )


def run_followups(
    values,
    scores,
    mask,
    *,
    config: FollowupConfig,
    head: Head | None = None,
    affine: AffineParams | tuple | None = None,
    predicted=None,
    doc_ids=None,
    other_scores=None,
    extra_rankings: Mapping[str, np.ndarray] | None = None,
) -> FollowupResults:
    """Rank agreement, weight baselines and adversarial attention for one batch.

    values `[batch, items, dim]`, scores `[batch, items]` (attention = masked softmax), mask bool
    `[batch, items]`; head(values, weights) -> logits (hashable) and/or affine=(kernel, bias)
    (closed forms, and the "norm" ranking); predicted int `[batch]` (default: the head's argmax on
    the attention); doc_ids int `[batch]` seed the random draws (default 0..batch-1);
    other_scores `[batch, items]`: another model's attention scores on the same items (the
    "other_seed" baseline); extra_rankings: name -> `[batch, items]` user scores compared with
    attention like the built-in rankings.
    """
    values = jnp.asarray(values)
    b, n, _ = values.shape
    mask = jnp.asarray(mask).astype(bool)
    if mask.shape != (b, n) or jnp.shape(scores) != (b, n):
        raise ValueError(f"scores and mask must have shape {(b, n)} to match values.")
    if head is None and affine is None:
        raise ValueError("run_followups needs head(values, weights) or affine=(kernel, bias).")
    if affine is not None:
        affine = AffineParams(*(jnp.asarray(a, values.dtype) for a in affine))
    alpha = masked_softmax(jnp.asarray(scores, values.dtype), mask)
    kernel_head = None if affine is not None else head
    if predicted is None:
        from attn_interp.followups.scores import base_logits

        predicted = jnp.argmax(base_logits(values, alpha, head=kernel_head, affine=affine), -1)
    predicted = jnp.asarray(predicted, jnp.int32)
    doc_ids = jnp.arange(b, dtype=jnp.int32) if doc_ids is None else jnp.asarray(doc_ids, jnp.int32)
    extra = dict(extra_rankings or {})
    for name, arr in extra.items():
        if np.shape(arr) != (b, n):
            raise ValueError(f"extra ranking {name!r} must have shape {(b, n)}.")
    names = tuple(r for r in config.rankings if r != "norm" or affine is not None)
    agreement = baselines = adversary = None
    if config.agreement and names + tuple(extra):
        block = block_docs_for(n, len(names) + len(extra), config.memory_budget_bytes)
        agreement = _agreement(
            values,
            alpha,
            mask,
            predicted,
            tuple(jnp.asarray(e) for e in extra.values()),
            affine,
            head=kernel_head,
            names=names,
            config=config,
            block=min(block, b),
        )
    if config.baselines:
        other = None
        if other_scores is not None:
            other = masked_softmax(jnp.asarray(other_scores, values.dtype), mask)
        baselines = weight_baselines(
            values,
            alpha,
            mask,
            predicted,
            doc_ids,
            head=kernel_head,
            affine=affine,
            other_weights=other,
            seed=config.seed,
        )
    if config.adversarial:
        adversary = adversarial_attention(
            values,
            alpha,
            mask,
            doc_ids,
            head=kernel_head,
            affine=affine,
            epsilons=config.epsilons,
            restarts=config.restarts,
            steps=config.steps,
            learning_rate=config.learning_rate,
            penalty=config.penalty,
            target_fraction=config.target_fraction,
            seed=config.seed,
        )
    return FollowupResults(
        seq_len=np.asarray(jnp.sum(mask, -1), np.int32),
        predicted=np.asarray(predicted),
        rankings=names + tuple(extra),
        agreement=jax.device_get(agreement),
        baselines=jax.device_get(baselines),
        adversary=jax.device_get(adversary),
        alpha=np.asarray(alpha),
        mask=np.asarray(mask),
    )
