"""Masked softmax and the additive (Yang et al. 2016) attention scorer (paper_notes.md §1.4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_interp.models.initializers import torch_default_uniform


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the valid items of each row: the one masked softmax of the models and the
    erasure engine (the engine's weights are then the model's own, see paper_notes.md Q10).

    scores: `[..., items]` (any value, even inf/NaN, at masked items); mask: bool `[..., items]`.
    Returns `[..., items]` weights that sum to 1 over valid items, are exactly 0 at masked items,
    and are all 0 (never NaN) in rows with no valid item.

    `jax.nn.softmax` subtracts the row maximum and divides by the sum of exponentials (more accurate
    in float32 than exp(s - logsumexp), whose rounding error grows with |s|), with a stable custom
    derivative. A row without valid items takes part as if all were valid (its weights are
    zeroed afterwards), so that no intermediate value is NaN there (-inf - -inf).
    """
    mask = jnp.asarray(mask, dtype=bool)
    if mask.shape != scores.shape:
        raise ValueError(
            f"masked_softmax: mask shape {mask.shape} must equal scores shape {scores.shape}."
        )
    inside = mask | ~jnp.any(mask, axis=-1, keepdims=True)
    weights = jax.nn.softmax(jnp.where(mask, scores, 0.0), axis=-1, where=inside)
    return jnp.where(mask, weights, 0.0)


def segment_softmax(scores: jax.Array, segment: jax.Array, num_segments: int) -> jax.Array:
    """Softmax over the items of each segment (the packed counterpart of `masked_softmax`).

    scores: `[...]`; segment: int `[...]` ids in [0, num_segments]; id `num_segments` marks
    positions outside every segment (weight 0). Returns weights `[...]` summing to 1 per segment.
    """
    flat_scores, flat_ids = scores.reshape(-1), segment.reshape(-1)
    n = num_segments + 1
    peak = jax.ops.segment_max(jax.lax.stop_gradient(flat_scores), flat_ids, num_segments=n)
    inside = flat_ids < num_segments
    exp = jnp.where(inside, jnp.exp(flat_scores - jnp.where(inside, peak[flat_ids], 0.0)), 0.0)
    total = jax.ops.segment_sum(exp, flat_ids, num_segments=n)
    return (exp / jnp.where(inside, total[flat_ids], 1.0)).reshape(scores.shape)


def segment_weighted_sum(
    values: jax.Array, weights: jax.Array, segment: jax.Array, num_segments: int
) -> jax.Array:
    """values `[..., dim]`, weights and segment `[...]` -> per-segment sums `[num_segments, dim]`
    of weights * values (zero for an empty segment; positions with id `num_segments` dropped)."""
    dim = values.shape[-1]
    weighted = (weights[..., None] * values).reshape(-1, dim)
    sums = jax.ops.segment_sum(weighted, segment.reshape(-1), num_segments=num_segments + 1)
    return sums[:num_segments]


def weighted_sum(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Attention-weighted sum: values `[..., items, dim]`, weights `[..., items]` -> `[..., dim]`."""
    return jnp.einsum("...n,...nd->...d", weights, values)


class AdditiveAttention(nnx.Module):
    """Scores s_i = c . tanh(W h_i + b), with W `[d, d]`, b `[d]` and c `[d]` (no bias).

    Init follows PyTorch's default Linear init, as in the original code.
    """

    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        init = torch_default_uniform(dim)
        self.projection = nnx.Linear(
            dim, dim, kernel_init=init, bias_init=init, param_dtype=param_dtype, rngs=rngs
        )
        self.context = nnx.Linear(
            dim, 1, use_bias=False, kernel_init=init, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, values: jax.Array) -> jax.Array:
        """values `[..., items, dim]` -> unnormalised scores `[..., items]`.

        Computed on values flattened to `[cells, dim]`, so that the kernels' gradients are 2-d
        matmuls over the cells (on a `[rows, items, dim]` array XLA contracted over two axes).
        """
        flat = values.reshape(-1, values.shape[-1])
        return self.context(jnp.tanh(self.projection(flat))).reshape(values.shape[:-1])
