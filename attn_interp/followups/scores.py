"""Importance scores of every item, from the erasure engine's own kernels, for rank agreement.

The same definitions as the engine's rankings (`attn_interp.erasure`): the gradient of the
predicted-class probability with respect to the attention weights as free inputs, gradient x
attention, the leave-one-out JS divergence of the output (erase one item, renormalise), and
attention x ||z_i|| for affine heads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from attn_interp.erasure.closed_form import closed_form_singles, item_logits
from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.divergence import LN2, js_and_kl_from_change, js_and_kl_raw
from attn_interp.erasure.gradients import affine_attention_gradient, attention_gradient
from attn_interp.erasure.mask_path import blocked_masked_head_logits, single_keep_masks
from attn_interp.erasure.primitives import HIGHEST

Head = Callable[[jax.Array, jax.Array], jax.Array]


class RankingScores(NamedTuple):
    """Per-item scores `[batch, items]`, 0 at padding; `norm` is None without an affine head.

    base_logits: the head's output on the unmodified attention `[batch, classes]`.
    """

    attention: jax.Array
    gradient: jax.Array
    grad_x_attention: jax.Array
    leave_one_out: jax.Array
    norm: jax.Array | None
    base_logits: jax.Array


def base_logits(
    values: jax.Array, alpha: jax.Array, *, head: Head | None, affine: AffineParams | None
) -> jax.Array:
    """Head output `[batch, classes]` on weights alpha `[batch, items]`; the affine product when
    `affine` is given (the head is then not called)."""
    if affine is not None:
        z = item_logits(values, affine.kernel)
        return jnp.einsum("bn,bnc->bc", alpha, z, precision=HIGHEST) + affine.bias
    return head(values, alpha)


def ranking_scores(
    values: jax.Array,
    alpha: jax.Array,
    mask: jax.Array,
    predicted: jax.Array,
    *,
    head: Head | None = None,
    affine: AffineParams | None = None,
) -> RankingScores:
    """Every ranking's scores for one batch (jittable).

    values `[batch, items, dim]`, alpha `[batch, items]` (a masked softmax: sums to 1 over valid
    items), mask bool `[batch, items]`, predicted int `[batch]` (the decision whose probability
    the gradient differentiates). With `affine` the closed forms run (`affine_attention_gradient`,
    `closed_form_singles`), else `head` through the mask path, as in `run_suite`.
    """
    mask = mask.astype(bool)
    n = mask.shape[1]
    base = base_logits(values, alpha, head=head, affine=affine)
    if affine is not None:
        z = item_logits(values, affine.kernel)
        grad = affine_attention_gradient(z, alpha, mask, affine.bias, predicted)
        _, change = closed_form_singles(alpha, z, affine.bias, unit_mass=True)
        loo, _ = js_and_kl_from_change(base[:, :, None], change, axis=1)
        norm = jnp.where(mask, alpha * jnp.sqrt(jnp.sum(z * z, axis=-1)), 0.0)
    else:
        grad = attention_gradient(head, values, alpha, mask, predicted)
        single = blocked_masked_head_logits(
            head, values, alpha, single_keep_masks, (mask,), masks_per_doc=n
        )
        loo, _ = js_and_kl_raw(base[:, None, :], single)
        norm = None
    loo = jnp.where(mask, jnp.clip(loo, 0.0, LN2), 0.0)
    return RankingScores(alpha, grad, grad * alpha, loo, norm, base)
