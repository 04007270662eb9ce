"""Slow, obvious references for the erasure engine: what its fast paths are tested against.

Nothing in the library imports this module; tests and `experiments.benchmark_erasure` do.

* `SequentialReference`: the original erasure algorithm, implemented literally
  (paper_notes.md §6.4). For every removal ordering: zero one more item per step, L1-renormalise
  the *current* weights (torch `normalize(p=1)`, floor 1e-12), run the head on the stored vectors,
  stop at the first decision flip. Each step is one jitted head call over the whole batch (fixed
  shape; documents that already flipped or ran out of items are masked out), with one host check
  per step of whether any document is still active. Single erasures are one head call per
  position.
* Textbook numpy formulas in float64 or extended precision: log-softmax and JS / KL divergences
  (`np_log_softmax`, `np_js`, `js_and_kl_longdouble`), the affine head's gradient of p(y)
  (`affine_gradient_float64`), stable descending orders (`stable_descending`).
* `brute_force_min_flip`: the exact minimum flip set by trying every removal set.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

FLOOR = 1e-12
# Margins below this (relative to the logits' scale) are too close to a tie for the float32
# arithmetic of the engine to decide like float64; exact ties (margin 0) are always compared.
AMBIGUOUS = 1e-5


def l1_normalise(w: jax.Array) -> jax.Array:
    """torch.nn.functional.normalize(w, p=1, dim=-1): w / max(||w||_1, 1e-12). `[batch, items]`."""
    return w / jnp.maximum(jnp.sum(jnp.abs(w), axis=-1, keepdims=True), FLOOR)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_js(logits_p: np.ndarray, logits_q: np.ndarray) -> np.ndarray:
    """JS divergence in nats (float64 numpy), `[..., classes]` -> `[...]`, not clipped."""
    lp, lq = np_log_softmax(logits_p), np_log_softmax(logits_q)
    p, q = np.exp(lp), np.exp(lq)
    lm = np.log(0.5 * (p + q))
    kl_pm = np.sum(np.where(p > 0, p * (lp - lm), 0.0), -1)
    kl_qm = np.sum(np.where(q > 0, q * (lq - lm), 0.0), -1)
    return 0.5 * kl_pm + 0.5 * kl_qm


class SequentialReference:
    """The original loops for one head. `head(values [B, n, d], weights [B, n]) -> [B, C]`."""

    def __init__(self, head: Callable[[jax.Array, jax.Array], jax.Array]):
        self.head = head
        self._head = jax.jit(head)
        self._step = jax.jit(self._step_impl)
        self._grad = jax.jit(self._grad_impl)

    def _step_impl(self, values, w, item, active, k, length, predicted, alpha, mass, k_found, pm):
        rows = jnp.arange(w.shape[0])
        w = w.at[rows, item].set(jnp.where(active, 0.0, w[rows, item]))
        w = jnp.where(active[:, None], l1_normalise(w), w)
        logits = self.head(values, w)
        mass = mass + jnp.where(active, alpha[rows, item], 0.0)
        flip = active & (jnp.argmax(logits, axis=-1) != predicted)
        k_found = jnp.where(flip, k, k_found)
        pm = jnp.where(flip, mass, pm)
        active = active & ~flip & (k < length)
        return w, active, mass, k_found, pm, logits

    def _grad_impl(self, values, alpha, mask, predicted):
        def total(w):
            p = jax.nn.softmax(self.head(values, w), axis=-1)
            return jnp.sum(jnp.take_along_axis(p, predicted[:, None], axis=1))

        return jnp.where(mask, jax.grad(total)(alpha), 0.0)

    def single_erasures(self, values, alpha, mask) -> np.ndarray:
        """Logits after zeroing each position alone: `[B, n, C]` (one head call per position)."""
        out = []
        n = mask.shape[1]
        for i in range(n):
            keep = mask & (jnp.arange(n) != i)[None, :]
            out.append(self._head(values, l1_normalise(jnp.where(keep, alpha, 0.0))))
        return np.stack(jax.device_get(out), axis=1)

    def removal(
        self, values, alpha, mask, order, predicted, *, stop_at_flip: bool = True
    ) -> dict[str, np.ndarray]:
        """Remove items along `order [B, n]` one per step until each document's decision flips.

        Returns k (first flip, -1 never), probmass, frac (-1 never) `[B]`, and with
        stop_at_flip=False also logits `[B, n, C]` of every step (k = 1..n; rows past a document's
        length repeat its last step).
        """
        values, alpha = jnp.asarray(values), jnp.asarray(alpha)
        mask = jnp.asarray(mask, bool)
        order = jnp.asarray(order, jnp.int32)
        predicted = jnp.asarray(predicted, jnp.int32)
        length = jnp.sum(mask, axis=-1).astype(jnp.int32)
        b, n = mask.shape
        w = jnp.where(mask, alpha, 0.0)
        active = length > 0
        mass = jnp.zeros(b, alpha.dtype)
        k_found = jnp.full(b, -1, jnp.int32)
        pm = jnp.full(b, -1.0, alpha.dtype)
        steps = []
        for k in range(1, n + 1):
            # stop_at_flip: documents leave at their flip. Otherwise keep removing after the flip
            # (to record whole curves) while the first flip stays recorded.
            w, still, mass, k_step, pm_step, logits = self._step(
                values, w, order[:, k - 1], active, k, length, predicted, alpha, mass, k_found, pm
            )
            if stop_at_flip:
                active, k_found, pm = still, k_step, pm_step
                if not bool(jnp.any(active)):
                    break
            else:
                first = (k_found == -1) & (k_step != -1)
                k_found = jnp.where(first, k_step, k_found)
                pm = jnp.where(first, pm_step, pm)
                active = active & (k < length)
                steps.append(logits)
        k_np, pm_np, len_np = (np.asarray(x) for x in (k_found, pm, length))
        out = {
            "k": k_np,
            "probmass": np.where(k_np > 0, pm_np, -1.0),
            "frac": np.where(k_np > 0, k_np / np.maximum(len_np, 1), -1.0),
        }
        if not stop_at_flip:
            out["logits"] = np.stack(jax.device_get(steps), axis=1)
        return out

    def gradient(self, values, alpha, mask, predicted) -> np.ndarray:
        """d p_yhat / d alpha (alpha as a free input), `[B, n]`."""
        return np.asarray(
            self._grad(
                jnp.asarray(values),
                jnp.asarray(alpha),
                jnp.asarray(mask, bool),
                jnp.asarray(predicted, jnp.int32),
            )
        )

    def suite(
        self,
        values,
        alpha,
        mask,
        predicted,
        random_orders: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Single erasures of every item plus first flips of attention (desc/asc), gradient,
        gradient x attention and the given random orderings `[B, num, n]`."""
        mask_np = np.asarray(mask, bool)
        single = self.single_erasures(values, alpha, mask)
        base = np.asarray(self._head(values, alpha))
        grad = self.gradient(values, alpha, mask, predicted)
        alpha_np = np.asarray(alpha)
        out: dict[str, np.ndarray] = {
            "single_logits": single,
            "single_js": np.where(mask_np, np.clip(np_js(base[:, None], single), 0, None), 0.0),
            "single_pred": np.argmax(single, -1),
            "gradient": grad,
        }
        orders: Mapping[str, np.ndarray] = {
            "attention": stable_descending(alpha_np, mask_np),
            "attention_asc": stable_descending(-alpha_np, mask_np),
            "gradient": stable_descending(grad, mask_np),
            "grad_x_attention": stable_descending(grad * alpha_np, mask_np),
        }
        orders = dict(orders)
        for i in range(random_orders.shape[1]):
            orders[f"random{i}"] = np.asarray(random_orders[:, i])
        for name, order in orders.items():
            res = self.removal(values, alpha, mask, order, predicted)
            for key, val in res.items():
                out[f"rank_{name}_{key}"] = val
        return out


def stable_descending(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """numpy stable descending argsort, padded positions last. `[B, n]`."""
    key = np.where(mask, -np.asarray(scores, np.float64), np.inf)
    return np.argsort(key, axis=-1, kind="stable")


def js_and_kl_longdouble(lp: np.ndarray, lq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(JS(p, q), KL(q || p)) by the textbook formulas in extended precision (x86: 64-bit
    mantissa), from the same rounded logits."""
    lp, lq = lp.astype(np.longdouble), lq.astype(np.longdouble)

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    a, b = log_softmax(lp), log_softmax(lq)
    p, q = np.exp(a), np.exp(b)
    log_m = np.log((p + q) / 2)
    js = 0.5 * np.sum(p * (a - log_m) + q * (b - log_m), -1)
    return js.astype(np.float64), np.sum(q * (b - a), -1).astype(np.float64)


def affine_gradient_float64(values, weights, kernel, bias, y=0):
    """g_i = p_y sum_{c != y} p_c (z_iy - z_ic) in float64 for one document: values `[n, d]`,
    weights `[n]`, kernel `[d, C]`, bias `[C]`. Returns (g `[n]`, log p `[C]`)."""
    z = values.astype(np.float64) @ kernel.astype(np.float64)  # [n, C]
    logits = weights.astype(np.float64) @ z + bias
    log_p = logits - np.logaddexp.reduce(logits)
    p = np.exp(log_p)
    return p[y] * ((z[:, y : y + 1] - z) @ p), log_p


def _all_removals(n: int) -> np.ndarray:
    """bool `[2^n - 1, n]`: every non-empty set of removed positions."""
    return np.array([s for s in itertools.product([False, True], repeat=n) if any(s)])


def brute_force_min_flip(
    values, weights, mask, kernel, bias, predicted, *, ambiguous: float = AMBIGUOUS
):
    """k_min per document by trying every removal set in float64 (the engine's semantics:
    renormalise the survivors, bias alone when no mass remains, argmax with first-index ties).

    Returns (k_min `[batch]`, robust bool `[batch]`: no survivor margin is a near-tie, i.e.
    within `ambiguous` times the logits' scale without being an exact tie)."""
    v, a = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    w, b = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    k_min = np.full(len(v), -1)
    robust = np.ones(len(v), bool)
    for i in range(len(v)):
        valid = np.flatnonzero(mask[i])
        z = v[i, valid] @ w
        removed = _all_removals(len(valid))
        kept = np.where(removed, 0.0, a[i, valid])
        mass = kept.sum(-1)
        num = kept @ z
        logits = np.where(mass[:, None] > 0, num / np.where(mass > 0, mass, 1)[:, None], 0) + b
        y = predicted[i]
        margin = logits[:, y : y + 1] - logits  # >= 0 keeps y against that class
        lower = np.arange(len(b)) < y
        flips = ((margin < 0) | ((margin == 0) & lower)).any(-1)
        scale = np.abs(z).max() + np.abs(b).max()
        near = (np.abs(margin) < ambiguous * scale) & (margin != 0)
        robust[i] = not near.any()
        if flips.any():
            k_min[i] = removed[flips].sum(-1).min()
    return k_min, robust
