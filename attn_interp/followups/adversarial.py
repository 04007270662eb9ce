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

Gradient. The loss's gradient in theta is written out rather than traced (`search_problem`'s
`evaluate`; a test compares it with `jax.grad` of the plain loss): dJS/d alpha~ = 1/2 log(alpha~ /
m), the hinge's slope times the TVD's gradient pulled back through the head (`jax.vjp`), then the
softmax Jacobian. It reuses the log-softmax's exponentials and log(alpha), so a step costs one exp
and one log per item (plus Adam's square root): per FLAN document (256 items, 12 searches) 289
kFLOP and 9.4 k transcendentals a step against 321 k and 12.4 k traced (XLA's cost analysis).

Batching: documents x epsilons x restarts are one `[batch, E * R, items]` array of logits and one
jitted `lax.scan` over the steps; Adam is elementwise and every loss term depends on one
(document, epsilon, restart) only, so each row follows the trajectory it would follow alone, up
to float rounding (batched products may round differently, and a few searches amplify that: the
max JS of a document can differ by ~1e-2 between batchings). On CPU the batch runs in cache-sized
blocks of documents (`block_docs`), each block through all steps. Starts (`restart_starts`): near alpha (alpha itself is a stationary point of the JS
term), the inverted attention, and noisier starts around alpha. The step size decays
(cosine, to 1% of `learning_rate`) so that late steps settle inside small budgets instead of
oscillating across the boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from attn_interp.erasure.closed_form import item_logits
from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.divergence import LN2
from attn_interp.erasure.primitives import HIGHEST
from attn_interp.erasure.random_draws import document_keys
from attn_interp.followups.metrics import attention_js, masked_softmax_and_log, output_tvd
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
    keys = document_keys(s.seed + _RESTART_SEED_OFFSET, doc_ids)
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


# Working set of one block of documents on CPU: small enough to stay in cache during all steps
# (the search is memory-bound there; one block of the whole batch was no faster than a loop).
CPU_BLOCK_BYTES = 1 << 20


def block_docs(batch: int, rows: int, items: int, itemsize: int) -> int:
    """Documents per block of the search: cache-sized blocks on CPU, the whole batch elsewhere."""
    if jax.default_backend() != "cpu":
        return batch
    per_doc = 24 * rows * items * itemsize  # about 24 live [rows, items] arrays per step
    return int(max(1, min(batch, CPU_BLOCK_BYTES // per_doc)))


def _weights_to_logits(values, head, affine):
    """w `[batch, S, items]` -> logits `[batch, S, classes]`; the affine head's per-item logits
    z = values @ W are computed once, not at every step."""
    if affine is None:
        return lambda w: head_on_weights(values, w, head=head, affine=None)
    z = item_logits(values, affine.kernel)
    return lambda w: jnp.einsum("bsn,bnc->bsc", w, z, precision=HIGHEST) + affine.bias


@functools.partial(jax.jit, static_argnames=("head", "settings", "block"))
def _search(values, alpha, mask, doc_ids, affine, *, head, settings: AdversarySettings, block):
    """`_search_docs` over blocks of `block` documents (`jax.lax.map` over `[blocks, block, ...]`;
    the last block padded with copies of the last document, whose results are dropped). Each
    block is searched as a batch, not as a vmap of single documents: vmapped, the head's
    products get a second batch dimension, which XLA's CPU backend ran several times slower."""
    b = alpha.shape[0]
    blocks = -(-b // block)

    def split(x):
        x = jnp.pad(x, [(0, blocks * block - b)] + [(0, 0)] * (x.ndim - 1), mode="edge")
        return x.reshape(blocks, block, *x.shape[1:])

    docs = tuple(split(x) for x in (values, alpha, mask, doc_ids))
    out = jax.lax.map(lambda d: _search_docs(*d, affine, head=head, settings=settings), docs)
    return tuple(y.reshape(blocks * block, *y.shape[2:])[:b] for y in out)


class SearchProblem(NamedTuple):
    """The adversarial search of a batch as pure functions (`search_problem`).

    init: the initial carry (logits, Adam state, best candidates so far).
    step: carry -> carry, one Adam step (also records the best feasible iterate).
    finish: carry -> (weights `[B, E, n]`, js `[B, E]`, tvd `[B, E]`, found `[B, E]`).
    evaluate: logits theta `[B, E * R, n]` -> (gradient of the loss in theta, alpha~, JS, TVD).
    """

    init: Any
    step: Callable[[Any], Any]
    finish: Callable[[Any], tuple[jax.Array, ...]]
    evaluate: Callable[[jax.Array], tuple[jax.Array, ...]]


def _js_and_slope(p, log_p, q, log_q):
    """JS(p, q) `[...]` and its partial derivative in q, 1/2 log(q / m) `[..., items]` (0 where
    q = 0), from one log per item: the +1 terms of d/dq [p log(p/m) + q log(q/m)] cancel. p, q are
    0 at padding; log_p, log_q are finite everywhere."""
    s = p + q
    log_m = jnp.log(jnp.where(s > 0, s, 1.0)) - LN2
    dq = jnp.where(q > 0, log_q - log_m, 0.0)
    dp = jnp.where(p > 0, log_p - log_m, 0.0)
    js = 0.5 * jnp.sum(p * dp + q * dq, axis=-1)
    return jnp.clip(js, 0.0, LN2), 0.5 * dq


def _tvd_and_slope(base_probs, logits):
    """TVD between the softmax outputs `[...]` and its gradient in `logits [..., classes]`."""
    probs = jax.nn.softmax(logits, axis=-1)
    diff = probs - base_probs
    sign = jnp.sign(diff)
    slope = 0.5 * probs * (sign - jnp.sum(probs * sign, axis=-1, keepdims=True))
    return 0.5 * jnp.sum(jnp.abs(diff), axis=-1), slope


def search_problem(
    values, alpha, mask, doc_ids, affine, *, head, settings: AdversarySettings
) -> SearchProblem:
    """Builds the search of one batch: `finish(step^steps(init))` is `_search_docs`' result."""
    s = settings
    mask = mask.astype(bool)
    rows_mask = mask[:, None, :]
    eps = jnp.repeat(jnp.asarray(s.epsilons, alpha.dtype), s.restarts)[None, :]  # [1, E * R]
    target = s.target_fraction * eps
    logits_of = _weights_to_logits(values, head, affine)
    alpha_rows = jnp.where(rows_mask, alpha[:, None, :], 0.0)
    log_alpha = jnp.log(jnp.where(alpha_rows > 0, alpha_rows, 1.0))  # loop-invariant
    base = logits_of(alpha_rows)  # [B, 1, C]
    base_probs = jax.nn.softmax(base, axis=-1)

    def evaluate(theta):
        q, log_q = masked_softmax_and_log(theta, rows_mask)
        js, js_slope = _js_and_slope(alpha_rows, log_alpha, q, log_q)
        logits, pullback = jax.vjp(logits_of, q)
        tvd, tvd_slope = _tvd_and_slope(base_probs, logits)
        # d loss / d TVD of the hinge penalty * max(0, TVD / target - 1).
        hinge = jnp.where(tvd > target, s.penalty / target, 0.0)
        (head_slope,) = pullback(hinge[..., None] * tvd_slope)
        slope_q = head_slope - js_slope  # d loss / d alpha~, loss = -JS + penalty
        grad = q * (slope_q - jnp.sum(q * slope_q, axis=-1, keepdims=True))  # softmax Jacobian
        return grad, q, js, tvd

    schedule = optax.cosine_decay_schedule(s.learning_rate, s.steps, alpha=0.01)
    optimizer = optax.adam(schedule)

    def keep_best(best, q, js, tvd):
        best_q, best_js = best
        better = (tvd <= eps) & (js > best_js)
        return jnp.where(better[..., None], q, best_q), jnp.where(better, js, best_js)

    def step(carry):
        theta, opt_state, best = carry
        grads, *measured = evaluate(theta)
        best = keep_best(best, *measured)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, best

    def finish(carry):
        theta, _, best = carry
        best_q, _ = keep_best(best, *evaluate(theta)[1:])
        # Fresh check of every start's best candidate against every epsilon (one found for a
        # small epsilon also counts for the larger ones), then the best verified one per epsilon.
        tvd = output_tvd(base, logits_of(best_q))  # [B, S]
        js = attention_js(alpha_rows, best_q, rows_mask)
        on_simplex = jnp.all(jnp.where(rows_mask, best_q >= 0, best_q == 0), axis=-1)
        eps_e = jnp.asarray(s.epsilons, alpha.dtype)[None, :, None]  # [1, E, 1]
        ok = (tvd[:, None, :] <= eps_e) & on_simplex[:, None, :] & (js[:, None, :] > 0)
        pick = jnp.argmax(jnp.where(ok, js[:, None, :], -1.0), axis=-1)  # [B, E]
        found = jnp.take_along_axis(ok, pick[..., None], axis=-1)[..., 0]
        cand = jnp.take_along_axis(best_q, pick[..., None], axis=1)  # [B, E, n]
        return (
            jnp.where(found[..., None], cand, alpha_rows),
            jnp.where(found, jnp.take_along_axis(js, pick, axis=1), 0.0),
            jnp.where(found, jnp.take_along_axis(tvd, pick, axis=1), 0.0),
            found,
        )

    theta = _initial_logits(alpha, mask, doc_ids, s)
    best = (jnp.broadcast_to(alpha_rows, theta.shape), jnp.zeros(theta.shape[:2], alpha.dtype))
    return SearchProblem((theta, optimizer.init(theta), best), step, finish, evaluate)


def _search_docs(values, alpha, mask, doc_ids, affine, *, head, settings: AdversarySettings):
    p = search_problem(values, alpha, mask, doc_ids, affine, head=head, settings=settings)
    carry, _ = jax.lax.scan(lambda c, _: (p.step(c), None), p.init, None, length=settings.steps)
    return p.finish(carry)


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
        block=block_docs(
            alpha.shape[0],
            len(settings.epsilons) * settings.restarts,
            alpha.shape[1],
            jnp.dtype(alpha.dtype).itemsize,
        ),
    )
    return AdversaryResult(settings.epsilons, *out)
