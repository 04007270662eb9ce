"""Adversarial attention (Jain & Wallace 2019, section 4.2): per document, weights on the simplex
over its valid items as far as possible from the model's attention alpha (JS divergence) while
the output stays within epsilon of the original (TVD <= epsilon).

Method. alpha~ = softmax(theta) over the valid items, so every iterate lies on the simplex exactly
and padding keeps weight 0. The output constraint has no cheap projection (the feasible set
{alpha~ : TVD(p(alpha), p(alpha~)) <= eps} is not convex for a softmax output, and for non-affine
heads not even explicit), so projected steps are not available; the search minimises

    -JS(alpha, alpha~) + penalty * max(0, TVD / (target_fraction * eps) - 1)

with Adam (optax) on theta. The hinge is an exact penalty: beyond the target the penalty's slope
(penalty / (target_fraction * eps) per unit of TVD) outweighs JS's, so iterates are pushed back
inside; aiming at target_fraction * eps < eps keeps the iterates that oscillate around the target
feasible. Feasibility never rests on the penalty: every iterate's TVD is computed exactly (it is
the same forward pass as the loss), the best *feasible* iterate of each start is kept, and the
candidates are checked once more with a fresh head call against every epsilon (one found for a
small epsilon counts for the larger ones too, so the max JS grows with epsilon); a document
without a verified candidate falls back to alpha itself (JS 0), which is always feasible.

Batching: documents x epsilons x restarts are one `[batch, E * R, items]` array of logits and one
jitted `lax.scan` over the steps; Adam is elementwise and every loss term depends on one
(document, epsilon, restart) only, so each row follows exactly the trajectory it would follow
alone. Starts (`restart_starts`): near alpha (alpha itself is a stationary point of the JS
term), the inverted attention, and noisier starts around alpha. The step size decays
(cosine, to 1% of `learning_rate`) so that late steps settle inside small budgets instead of
oscillating across the boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from attn_interp.erasure import kernels as K
from attn_interp.erasure.config import AffineParams
from attn_interp.followups.metrics import attention_js, masked_log_softmax, output_tvd
from attn_interp.followups.weight_baselines import head_on_weights

_RESTART_SEED_OFFSET = 0xAD5  # the restarts' random stream, apart from the permutation's


@struct.dataclass
class AdversaryResult:
    """Best feasible adversarial attention per document and epsilon.

    epsilons: the output budgets, in column order (static).
    weights: alpha~ `[batch, E, items]` (alpha itself where no feasible candidate beat it).
    js: JS(alpha, alpha~) in nats `[batch, E]` (0 for the fallback).
    tvd: TVD between the outputs on alpha and alpha~ `[batch, E]`, verified <= epsilon.
    feasible: bool `[batch, E]`: a candidate with JS > 0 passed the final check (False: the
      fallback to alpha, JS 0, e.g. for n = 1).
    """

    epsilons: tuple[float, ...] = struct.field(pytree_node=False)
    weights: jax.Array
    js: jax.Array
    tvd: jax.Array
    feasible: jax.Array


class AdversarySettings(struct.PyTreeNode):
    """Static settings of one compilation (a subset of `FollowupConfig`)."""

    epsilons: tuple[float, ...] = struct.field(pytree_node=False)
    restarts: int = struct.field(pytree_node=False)
    steps: int = struct.field(pytree_node=False)
    learning_rate: float = struct.field(pytree_node=False)
    penalty: float = struct.field(pytree_node=False)
    target_fraction: float = struct.field(pytree_node=False)
    seed: int = struct.field(pytree_node=False)


def restart_starts(restarts: int) -> tuple[tuple[float, float], ...]:
    """(sign, noise scale) of each restart's start sign * log(alpha) + scale * N(0, 1): restart 0
    searches around alpha, restart 1 starts from the inverted attention (mass on the least
    attended items, where an unconstrained maximum of JS lies), restarts r >= 2 around alpha with
    noise of scale 2^(r - 2)."""
    starts = [(1.0, 0.1), (-1.0, 0.1)] + [(1.0, 2.0 ** (r - 2)) for r in range(2, restarts)]
    return tuple(starts[:restarts])


def _initial_logits(alpha, mask, doc_ids, s: AdversarySettings):
    """theta_0 `[batch, E * R, items]` (see `restart_starts`), the noise drawn per (document,
    position) from the document's key, so it does not depend on padding or batching."""
    tiny = jnp.finfo(alpha.dtype).tiny
    log_alpha = jnp.where(mask, jnp.log(jnp.maximum(alpha, tiny)), 0.0)
    log_alpha = jnp.maximum(log_alpha, -30.0)  # underflowed weights: a finite inverse start
    keys = K.document_keys(s.seed + _RESTART_SEED_OFFSET, doc_ids)
    n, rows = alpha.shape[1], len(s.epsilons) * s.restarts

    def doc_noise(key):  # [rows, n], each position from its own key
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (rows,)))(
            jnp.arange(n)
        ).T

    noise = jax.vmap(doc_noise)(keys).astype(alpha.dtype)
    sign, scale = (
        jnp.tile(jnp.asarray(c, alpha.dtype), len(s.epsilons))
        for c in zip(*restart_starts(s.restarts), strict=True)
    )
    return sign[None, :, None] * log_alpha[:, None, :] + scale[None, :, None] * noise


@functools.partial(jax.jit, static_argnames=("head", "settings"))
def _search(values, alpha, mask, doc_ids, affine, *, head, settings: AdversarySettings):
    s = settings
    mask = mask.astype(bool)
    num_r = s.restarts
    rows_mask = mask[:, None, :]
    eps = jnp.repeat(jnp.asarray(s.epsilons, alpha.dtype), num_r)[None, :]  # [1, E * R]
    base = head_on_weights(values, alpha[:, None, :], head=head, affine=affine)  # [B, 1, C]
    alpha_rows = alpha[:, None, :]

    def measures(theta):
        log_q = masked_log_softmax(theta, rows_mask)
        q = jnp.where(rows_mask, jnp.exp(log_q), 0.0)
        js = attention_js(alpha_rows, q, rows_mask, log_q=log_q)
        tvd = output_tvd(base, head_on_weights(values, q, head=head, affine=affine))
        return q, js, tvd

    def loss(theta):
        q, js, tvd = measures(theta)
        excess = jax.nn.relu(tvd / (s.target_fraction * eps) - 1.0)
        return jnp.sum(-js + s.penalty * excess), (q, js, tvd)

    schedule = optax.cosine_decay_schedule(s.learning_rate, s.steps, alpha=0.01)
    optimizer = optax.adam(schedule)
    theta = _initial_logits(alpha, mask, doc_ids, s)
    best_q = jnp.broadcast_to(alpha_rows, theta.shape)
    best_js = jnp.zeros(theta.shape[:2], alpha.dtype)

    def keep_best(best, q, js, tvd):
        best_q, best_js = best
        better = (tvd <= eps) & (js > best_js)
        return jnp.where(better[..., None], q, best_q), jnp.where(better, js, best_js)

    def step(carry, _):
        theta, opt_state, best = carry
        grads, (q, js, tvd) = jax.grad(loss, has_aux=True)(theta)
        best = keep_best(best, q, js, tvd)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state, best), None

    carry = (theta, optimizer.init(theta), (best_q, best_js))
    (theta, _, best), _ = jax.lax.scan(step, carry, None, length=s.steps)
    best_q, best_js = keep_best(best, *measures(theta))

    # Fresh check of every start's best candidate against every epsilon (a candidate found for a
    # small epsilon also counts for the larger ones), then the best verified one per epsilon.
    tvd = output_tvd(base, head_on_weights(values, best_q, head=head, affine=affine))  # [B, S]
    js = attention_js(alpha_rows, best_q, rows_mask)
    on_simplex = jnp.all(jnp.where(rows_mask, best_q >= 0, best_q == 0), axis=-1)
    eps_e = jnp.asarray(s.epsilons, alpha.dtype)[None, :, None]  # [1, E, 1]
    ok = (tvd[:, None, :] <= eps_e) & on_simplex[:, None, :] & (js[:, None, :] > 0)  # [B, E, S]
    pick = jnp.argmax(jnp.where(ok, js[:, None, :], -1.0), axis=-1)  # [B, E]
    found = jnp.take_along_axis(ok, pick[..., None], axis=-1)[..., 0]
    cand = jnp.take_along_axis(best_q, pick[..., None], axis=1)  # [B, E, n]
    weights = jnp.where(found[..., None], cand, alpha[:, None, :])
    return (
        weights,
        jnp.where(found, jnp.take_along_axis(js, pick, axis=1), 0.0),
        jnp.where(found, jnp.take_along_axis(tvd, pick, axis=1), 0.0),
        found,
    )


def adversarial_attention(
    values: jax.Array,
    alpha: jax.Array,
    mask: jax.Array,
    doc_ids: jax.Array,
    *,
    head: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    affine: AffineParams | None = None,
    epsilons: tuple[float, ...] = (0.01,),
    restarts: int = 4,
    steps: int = 200,
    learning_rate: float = 0.3,
    penalty: float = 10.0,
    target_fraction: float = 0.8,
    seed: int = 0,
) -> AdversaryResult:
    """Adversarial attention for one batch (see the module docstring), one jitted call.

    values `[batch, items, dim]`, alpha `[batch, items]` (the model's attention, 0 at padding),
    mask bool `[batch, items]`, doc_ids int `[batch]` (seed the restarts). `head(values,
    weights) -> logits` must be hashable; with `affine` the head is the affine product instead.
    """
    if head is None and affine is None:
        raise ValueError("adversarial_attention needs head(values, weights) or affine.")
    if not epsilons or any(e <= 0 for e in epsilons):
        raise ValueError(f"epsilons must be positive, got {epsilons}.")
    settings = AdversarySettings(
        epsilons=tuple(float(e) for e in epsilons),
        restarts=int(restarts),
        steps=int(steps),
        learning_rate=float(learning_rate),
        penalty=float(penalty),
        target_fraction=float(target_fraction),
        seed=int(seed),
    )
    out = _search(
        values,
        alpha,
        mask,
        jnp.asarray(doc_ids, jnp.int32),
        affine,
        head=None if affine is not None else head,
        settings=settings,
    )
    return AdversaryResult(settings.epsilons, *out)
