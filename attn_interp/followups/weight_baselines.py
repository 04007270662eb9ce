"""Baselines for the attention weights (Wiegreffe & Pinter 2019 sections 3-4; Jain & Wallace 2019
section 4.1): run the head on replacement weights and measure how much the output moves.

Replacements of each document's attention alpha over its valid items:

* "uniform": 1 / n on every valid item (W&P's uniform baseline, here at inference time on the
  trained model rather than a model trained with frozen uniform weights);
* "permuted": alpha's own values in a random order of the valid items (J&W's permutation);
* "other_seed": another model's attention on the same items (W&P's seed variance), when given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from attn_interp.erasure.closed_form import item_logits
from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.divergence import js_divergence
from attn_interp.erasure.primitives import HIGHEST
from attn_interp.erasure.random_draws import random_orderings
from attn_interp.followups.metrics import attention_js, output_tvd

# The permutation's random stream: the engine's per-document ordering draws under a seed of its
# own, so the permutation is independent of the erasure suite's random orderings.
PERMUTATION_SEED_OFFSET = 0x5EED


@struct.dataclass
class BaselineResult:
    """Outputs of the head on M replacement weightings, `[batch, M]` each.

    names: the M replacements, in column order (static).
    predicted: argmax of the head's output on the replacement weights.
    changed: predicted differs from the decision on the original attention.
    tvd, js: total variation distance and JS divergence (nats) between the output distributions.
    weight_js: JS divergence between the replacement weights and alpha.
    """

    names: tuple[str, ...] = struct.field(pytree_node=False)
    predicted: jax.Array
    changed: jax.Array
    tvd: jax.Array
    js: jax.Array
    weight_js: jax.Array


def permuted_weights(alpha: jax.Array, mask: jax.Array, doc_ids: jax.Array, seed: int) -> jax.Array:
    """alpha `[batch, items]` with its valid values moved to a uniformly random order of the
    valid positions (padding stays 0); each document's draw is seeded by its id. `[batch, items]`.
    """
    order = random_orderings(mask, doc_ids, seed + PERMUTATION_SEED_OFFSET, 1)[:, 0]
    valid_first = jnp.argsort(~mask.astype(bool), axis=-1, stable=True)  # valid positions in order
    values = jnp.take_along_axis(alpha, valid_first, axis=-1)
    return jnp.put_along_axis(jnp.zeros_like(alpha), order, values, axis=-1, inplace=False)


def uniform_weights(mask: jax.Array, dtype=jnp.float32) -> jax.Array:
    """1 / n on the valid items of mask `[batch, items]`, 0 elsewhere."""
    m = mask.astype(dtype)
    return m / jnp.maximum(jnp.sum(m, axis=-1, keepdims=True), 1.0)


def head_on_weights(
    values: jax.Array,
    weights: jax.Array,
    *,
    head: Callable[[jax.Array, jax.Array], jax.Array] | None,
    affine: AffineParams | None,
) -> jax.Array:
    """Logits `[batch, M, classes]` of the head on M weightings `[batch, M, items]` of values
    `[batch, items, dim]`: one vmapped head call, or the affine product when `affine` is given."""
    if affine is not None:
        z = item_logits(values, affine.kernel)
        return jnp.einsum("bmn,bnc->bmc", weights, z, precision=HIGHEST) + affine.bias
    return jax.vmap(head, in_axes=(None, 1), out_axes=1)(values, weights)


@functools.partial(jax.jit, static_argnames=("head", "seed"))
def _baselines(values, alpha, mask, predicted, doc_ids, other, affine, *, head, seed):
    mask = mask.astype(bool)
    rows = [uniform_weights(mask, alpha.dtype), permuted_weights(alpha, mask, doc_ids, seed)]
    if other is not None:
        rows.append(jnp.where(mask, other.astype(alpha.dtype), 0.0))
    weights = jnp.stack([alpha, *rows], axis=1)  # row 0: the original attention
    logits = head_on_weights(values, weights, head=head, affine=affine)
    base, new = logits[:, :1], logits[:, 1:]
    new_pred = jnp.argmax(new, axis=-1).astype(jnp.int32)
    return (
        new_pred,
        new_pred != predicted[:, None],
        output_tvd(base, new),
        js_divergence(jnp.broadcast_to(base, new.shape), new),
        attention_js(alpha[:, None, :], weights[:, 1:], mask[:, None, :]),
    )


def weight_baselines(
    values: jax.Array,
    alpha: jax.Array,
    mask: jax.Array,
    predicted: jax.Array,
    doc_ids: jax.Array,
    *,
    head: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    affine: AffineParams | None = None,
    other_weights: jax.Array | None = None,
    seed: int = 0,
) -> BaselineResult:
    """The head's output on uniform, permuted and (optionally) another model's weights, in one
    jitted call for the batch.

    values `[batch, items, dim]`, alpha `[batch, items]` (the model's attention, 0 at padding),
    mask bool `[batch, items]`, predicted int `[batch]` (decision on alpha), doc_ids int `[batch]`
    (seed the permutation), other_weights `[batch, items]` (another model's attention on the same
    items). `head` must be hashable (a static jit argument); `affine` replaces it by the product.
    """
    if head is None and affine is None:
        raise ValueError("weight_baselines needs head(values, weights) or affine=(kernel, bias).")
    if other_weights is not None and tuple(other_weights.shape) != tuple(alpha.shape):
        raise ValueError(
            f"other_weights must have alpha's shape {tuple(alpha.shape)}, got "
            f"{tuple(other_weights.shape)}."
        )
    names = ("uniform", "permuted") + (("other_seed",) if other_weights is not None else ())
    out = _baselines(
        values,
        alpha,
        mask,
        jnp.asarray(predicted, jnp.int32),
        jnp.asarray(doc_ids, jnp.int32),
        other_weights,
        affine,
        head=None if affine is not None else head,
        seed=seed,
    )
    return BaselineResult(names, *out)
