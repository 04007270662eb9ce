"""`run_suite`: every erasure test of the paper (and extensions) for one batch, in one jitted call.

`run_suite` checks and normalises its inputs (`attn_interp.erasure.suite_inputs`), builds the
static `_Spec` of the compilation and runs the kernel over chunks of documents that fit the memory
budget. One kernel call computes, in order: the head on the unmodified weights, every single
erasure, every ordering (one stable sort), the single-erasure targets, prefix removals along each
ranking, AOPC and the exact minimum flip set. The results are a `SuiteResults` (`attn_interp.erasure.results`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from attn_interp import parallel
from attn_interp.erasure import packing
from attn_interp.erasure.closed_form import (
    closed_form_removal,
    closed_form_singles,
    item_logits,
    removed_mass_at,
)
from attn_interp.erasure.config import AffineParams, ErasureConfig
from attn_interp.erasure.decisions import argmax_rows, first_flip, predicted_probability
from attn_interp.erasure.divergence import LN2, js_and_kl_from_change, js_and_kl_raw
from attn_interp.erasure.gradients import affine_attention_gradient, attention_gradient
from attn_interp.erasure.mask_path import (
    blocked_masked_head_logits,
    prefix_keep_masks,
    single_keep_masks,
)
from attn_interp.erasure.min_flip import minimum_flip_set_from_z
from attn_interp.erasure.primitives import HIGHEST, gather_items
from attn_interp.erasure.random_draws import (
    comparison_uniforms,
    random_other_items,
    random_sort_keys,
)
from attn_interp.erasure.results import (
    RANDOM_TARGETS,
    SINGLE_TARGETS,
    DocumentStats,
    ItemArrays,
    ItemCurve,
    MinimumFlipSet,
    RemovalCurve,
    SingleErasure,
    SuiteResults,
    concatenate_results,
)
from attn_interp.erasure.sorting import ascending_order, descending_keys
from attn_interp.erasure.suite_inputs import SuiteInputs, check_inputs
from attn_interp.models.attention import masked_softmax


class _Spec(NamedTuple):
    """Static (hashable) description of one kernel compilation."""

    use_scores: bool
    closed: bool
    has_affine: bool
    has_predicted: bool
    ranking_names: tuple[str, ...]  # built-in rankings with curves, in order
    extra_names: tuple[str, ...]
    num_random: int
    random_mode: str
    seed: int
    aopc_fractions: tuple[float, ...]
    aopc: bool
    sufficiency: bool
    min_flip: bool  # exact minimum flip set and gaps: affine head and config.minimum_flip_set
    r_given: tuple[bool, bool, bool]
    store_items: bool
    head_state: bool  # head is called as head(head_state, values, weights)


def _ranking_scores(name, alpha, grad, single_js, z):
    if name == "attention":
        return alpha
    if name == "attention_asc":
        return -alpha
    if name == "gradient":
        return grad
    if name == "grad_x_attention":
        return grad * alpha
    if name == "leave_one_out":
        return single_js
    if name == "norm":
        return alpha * jnp.sqrt(jnp.sum(z * z, axis=-1))
    raise ValueError(f"unknown ranking {name!r}")


_TARGET_ORDER_RANKINGS = ("attention", "attention_asc", "gradient", "grad_x_attention")


def _target_names(spec: _Spec) -> tuple[str, ...]:
    return (
        tuple(SINGLE_TARGETS)
        + tuple(RANDOM_TARGETS)
        + tuple(f"random{i}_first" for i in range(spec.num_random))
    )


def _curve_names(spec: _Spec) -> tuple[str, ...]:
    randoms = tuple(f"random{i}" for i in range(spec.num_random))
    return spec.ranking_names + spec.extra_names + randoms


class _Base(NamedTuple):
    """The unmodified head on one batch: what every erasure compares against."""

    alpha: jax.Array  # [B, n] attention weights
    z: jax.Array | None  # [B, n, C] per-item logits (affine head only)
    logits: jax.Array  # [B, C]
    y: jax.Array  # [B] int32, the prediction whose flips are counted
    y_head: jax.Array  # [B] int32, the head's own argmax
    p_y: jax.Array  # [B] p(y)
    grad: jax.Array  # [B, n] d p(y) / d alpha
    length: jax.Array  # [B] int32


class _Singles(NamedTuple):
    """Zeroing each item alone, `[B, n]` (0 / -1 at padding)."""

    js: jax.Array
    kl: jax.Array
    flip: jax.Array  # int32 new decision, -1 when unchanged
    js_negative: jax.Array  # [B] int32, JS values below 0 before clipping
    kl_negative: jax.Array  # [B] int32


class _Removals(NamedTuple):
    """Prefix removals along the curve rankings, `[B, R]` (`[B, R, n]` for the curves)."""

    k: jax.Array  # int32 first flip, -1 never
    p_removed: jax.Array | None  # [B, R, n] p(y) with the top k removed
    p_kept: jax.Array | None  # [B, R, n] p(y) with only the top k kept


def _head_on_weights(values, scores, mask, predicted, kernel, bias, head, spec: _Spec) -> _Base:
    """Original output of the head (quirk Q10 check) and the gradient of p(yhat) in the weights."""
    alpha = masked_softmax(scores, mask) if spec.use_scores else jnp.where(mask, scores, 0.0)
    alpha = alpha.astype(values.dtype)
    z = item_logits(values, kernel) if spec.has_affine else None
    if spec.closed:
        logits = jnp.einsum("bn,bnc->bc", alpha, z, precision=HIGHEST) + bias
    else:
        logits = head(values, alpha)
    y_head = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    y = predicted.astype(jnp.int32) if spec.has_predicted else y_head
    if spec.closed:
        grad = affine_attention_gradient(z, alpha, mask, bias, y)
    else:
        grad = attention_gradient(head, values, alpha, mask, y)
    length = jnp.sum(mask, axis=-1).astype(jnp.int32)
    p_y = predicted_probability(logits, y)
    return _Base(alpha, z, logits, y, y_head, p_y, grad, length)


def _single_erasures(values, mask, bias, base: _Base, head, spec: _Spec) -> _Singles:
    """Every single erasure; the closed form's divergences come from the exact logit change."""
    n = mask.shape[1]
    if spec.closed:  # class-major rows with up to 32 classes
        single, change = closed_form_singles(base.alpha, base.z, bias, unit_mass=spec.use_scores)
        js_raw, kl_raw = js_and_kl_from_change(base.logits[:, :, None], change, axis=1)
    else:
        single = blocked_masked_head_logits(
            head, values, base.alpha, single_keep_masks, (mask,), masks_per_doc=n
        )
        js_raw, kl_raw = js_and_kl_raw(base.logits[:, None, :], single)
    if isinstance(single, list):
        pred = argmax_rows(single)
    else:
        pred = jnp.argmax(single, axis=-1).astype(jnp.int32)
    return _Singles(
        js=jnp.where(mask, jnp.clip(js_raw, 0.0, LN2), 0.0),
        kl=jnp.where(mask, jnp.maximum(kl_raw, 0.0), 0.0),
        flip=jnp.where(mask & (pred != base.y[:, None]), pred, -1),
        js_negative=jnp.sum(mask & (js_raw < 0), -1).astype(jnp.int32),
        kl_negative=jnp.sum(mask & (kl_raw < 0), -1).astype(jnp.int32),
    )


def _orderings(mask, doc_ids, extra_scores, base: _Base, singles: _Singles, spec: _Spec):
    """Every ordering from one stable sort: built-in rankings, extras, random keys.

    Returns (orders int32 [B, rows, n], ranking name -> row).
    """
    names = tuple(dict.fromkeys(_TARGET_ORDER_RANKINGS + spec.ranking_names))
    rows = [_ranking_scores(nm, base.alpha, base.grad, singles.js, base.z) for nm in names]
    rows += [s.astype(base.alpha.dtype) for s in extra_scores]
    score_keys = descending_keys(jnp.stack(rows, axis=1), mask[:, None, :])
    random_keys = random_sort_keys(mask, doc_ids, spec.seed, spec.num_random)
    orders = ascending_order(
        jnp.concatenate([score_keys, random_keys.astype(score_keys.dtype)], axis=1)
    )
    row_of = {name: i for i, name in enumerate(names + spec.extra_names)}
    row_of.update({f"random{i}": len(row_of) + i for i in range(spec.num_random)})
    return orders, row_of


def _target_items(mask, doc_ids, r_ext, orders, row_of, base: _Base, spec: _Spec):
    """Positions `[B, T]` of the single-erasure targets and whether each exists."""
    length = base.length
    idx, ok = [], []
    for rname, pos in SINGLE_TARGETS.values():
        idx.append(orders[:, row_of[rname], pos])
        ok.append(length >= pos + 1)
    tops = jnp.stack([idx[list(SINGLE_TARGETS).index(t)] for t in RANDOM_TARGETS.values()], 1)
    tops = jnp.where(length[:, None] >= 1, tops, 0)
    u = comparison_uniforms(doc_ids, spec.seed, len(RANDOM_TARGETS))
    r = random_other_items(u, mask, tops, spec.random_mode)
    for j in range(len(RANDOM_TARGETS)):
        r_j = jnp.where(length >= 2, r_ext[:, j], -1) if spec.r_given[j] else r[:, j]
        idx.append(r_j)
        ok.append((length >= 2) & (r_j >= 0))
    for i in range(spec.num_random):
        idx.append(orders[:, row_of[f"random{i}"], 0])
        ok.append(length >= 1)
    return jnp.stack(idx, axis=1), jnp.stack(ok, axis=1)


def _single_targets(t_idx, t_ok, base: _Base, singles: _Singles) -> SingleErasure:
    """The single erasures of the targets, every field `[B, T]` (-1 / NaN where undefined)."""
    safe = jnp.clip(t_idx, 0, base.alpha.shape[1] - 1)
    fl = gather_items(jnp.stack([base.alpha, singles.js, singles.kl], -1), safe)  # [B, T, 3]
    fl = jnp.where(t_ok[..., None], fl, jnp.nan)
    return SingleErasure(
        index=jnp.where(t_ok, t_idx, -1),
        flip=jnp.where(t_ok, jnp.take_along_axis(singles.flip, safe, 1), -1),
        weight=fl[..., 0],
        js=fl[..., 1],
        kl=fl[..., 2],
    )


def _prefix_removals(values, mask, bias, orders, base: _Base, head, spec: _Spec) -> _Removals:
    """Removing (and keeping only) the top k items of every curve ranking, k = 1..n."""
    if spec.closed:
        curves = closed_form_removal(
            base.alpha,
            base.z,
            bias,
            orders,
            base.y,
            base.length,
            kept=spec.sufficiency,
            probabilities=spec.aopc,
        )
        return _Removals(curves["k"], curves.get("p_removed"), curves.get("p_kept"))
    b, num_r, n = orders.shape
    tops = (False, True) if spec.sufficiency else (False,)

    def keep_fn(o, m):  # [g, R, n], [g, n] -> [g, R' * n(k), n]
        keep = jnp.concatenate([prefix_keep_masks(o, m, keep_top=t) for t in tops], 1)
        return keep.reshape(o.shape[0], -1, n)

    logits = blocked_masked_head_logits(
        head, values, base.alpha, keep_fn, (orders, mask), masks_per_doc=len(tops) * num_r * n
    )
    logits = logits.reshape(b, len(tops) * num_r, n, -1)
    k_flip, _ = first_flip(logits[:, :num_r], base.y, base.length)
    if not spec.aopc:
        return _Removals(k_flip, None, None)
    p_all = predicted_probability(logits, base.y[:, None, None])
    return _Removals(k_flip, p_all[:, :num_r], p_all[:, num_r:])


def _aopc(p_k, base: _Base, spec: _Spec):
    """AOPC of one curve: (drop [B, R, n], mean over all k [B, R], mean over fractions [B, R])."""
    b, num_r, n = p_k.shape
    len_f = jnp.maximum(base.length, 1).astype(p_k.dtype)[:, None]
    valid_k = jnp.arange(1, n + 1)[None, None, :] <= base.length[:, None, None]
    frac_k = jnp.stack([aopc_k(base.length, f) for f in spec.aopc_fractions], axis=1) - 1
    frac_k = jnp.broadcast_to(frac_k[:, None, :], (b, num_r, frac_k.shape[1]))
    drop = base.p_y[:, None, None] - p_k
    full = jnp.sum(jnp.where(valid_k, drop, 0.0), axis=2) / len_f
    return drop, full, jnp.mean(jnp.take_along_axis(drop, frac_k, 2), axis=2)


def _removal_curves(orders, removals: _Removals, k_min, base: _Base, spec: _Spec):
    """Per-ranking statistics `[B, R]`: a `RemovalCurve` (absent fields NaN / -1) and the
    per-k AOPC drops `(comprehensiveness, sufficiency)` `[B, R, n]` (None without AOPC)."""
    k = removals.k
    len_f = jnp.maximum(base.length, 1).astype(base.alpha.dtype)[:, None]
    frac = jnp.where(k > 0, k / len_f, -1.0)
    nan = jnp.full_like(frac, jnp.nan)
    comp = suff = None
    comp_full = comp_frac = suff_full = suff_frac = nan
    if spec.aopc:
        comp, comp_full, comp_frac = _aopc(removals.p_removed, base, spec)
        suff = comp
        if spec.sufficiency:
            suff, suff_full, suff_frac = _aopc(removals.p_kept, base, spec)
    gap, gap_frac = jnp.full_like(k, -1), nan
    if k_min is not None:
        both = (k > 0) & (k_min[:, None] > 0)
        gap = jnp.where(both, k - k_min[:, None], -1)
        gap_frac = jnp.where(both, gap / len_f, jnp.nan)
    curve = RemovalCurve(
        k=k,
        gap=gap,
        frac=frac,
        probmass=jnp.where(k > 0, removed_mass_at(base.alpha, orders, k), -1.0),
        gap_frac=gap_frac,
        aopc_comp=comp_full,
        aopc_comp_frac=comp_frac,
        aopc_suff=suff_full,
        aopc_suff_frac=suff_frac,
    )
    return curve, (comp, suff)


class _KernelOut(NamedTuple):
    """What one jitted call returns (the leading axis of every field is the batch)."""

    docs: DocumentStats  # doc_id and seq_len are filled in on the host
    targets: SingleErasure  # [B, T], T = _target_names(spec)
    curves: RemovalCurve  # [B, R], R = _curve_names(spec)
    k_min: jax.Array | None  # [B]
    per_item: tuple | None  # (alpha, gradient, single_js, single_kl, single_flip) [B, n]
    item_curves: ItemCurve | None  # [B, R, n]


def _suite_outputs(
    values,
    scores,
    mask,
    predicted,
    doc_ids,
    r_ext,
    extra_scores,
    kernel,
    bias,
    head_state,
    *,
    head,
    spec,
) -> _KernelOut:
    """All erasure tests of one batch: single erasures -> orderings -> prefix removals -> AOPC
    -> minimum flip set."""
    mask = mask.astype(bool)
    if spec.head_state and head is not None:  # the closed form has no head
        head = functools.partial(head, head_state)
    base = _head_on_weights(values, scores, mask, predicted, kernel, bias, head, spec)
    singles = _single_erasures(values, mask, bias, base, head, spec)
    all_orders, row_of = _orderings(mask, doc_ids, extra_scores, base, singles, spec)
    t_idx, t_ok = _target_items(mask, doc_ids, r_ext, all_orders, row_of, base, spec)
    curve_rows = jnp.asarray([row_of[name] for name in _curve_names(spec)], jnp.int32)
    orders = all_orders[:, curve_rows]  # [B, R, n]
    removals = _prefix_removals(values, mask, bias, orders, base, head, spec)
    k_min = None
    if spec.min_flip:
        k_min, _ = minimum_flip_set_from_z(base.z, base.alpha, mask, bias, base.y)
    curves, (comp, suff) = _removal_curves(orders, removals, k_min, base, spec)
    docs = DocumentStats(
        doc_id=None,
        seq_len=None,
        predicted=base.y,
        predicted_head=base.y_head,
        prediction_mismatch=base.y != base.y_head,
        js_clipped=singles.js_negative,
        kl_clipped=singles.kl_negative,
        p_predicted=base.p_y,
    )
    per_item = item_curves = None
    if spec.store_items:
        per_item = (base.alpha, base.grad, singles.js, singles.kl, singles.flip)
        item_curves = ItemCurve(comp, suff, orders)
    targets = _single_targets(t_idx, t_ok, base, singles)
    return _KernelOut(docs, targets, curves, k_min, per_item, item_curves)


def _packed_outputs(*args, head, spec) -> tuple[jax.Array, ...]:
    """`_suite_outputs` as one `[B, columns]` buffer per dtype (`packing`): a few transfers to
    the host instead of one per field."""
    return packing.pack(_suite_outputs(*args, head=head, spec=spec))


_suite_kernel = jax.jit(_packed_outputs, static_argnames=("head", "spec"))
_LAYOUTS: dict = {}


def _output_layout(args, head, spec: _Spec) -> packing.Layout:
    """Where `_packed_outputs` puts each field, for kernel arguments `args` (cached: it depends
    only on the static arguments and the batch's shape and dtype)."""
    values = args[0]
    key = (head, spec, tuple(values.shape[:2]), np.dtype(values.dtype))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        shapes = jax.eval_shape(functools.partial(_suite_outputs, head=head, spec=spec), *args)
        _LAYOUTS[key] = packing.layout(shapes)
    return _LAYOUTS[key]


@functools.lru_cache(maxsize=64)
def _per_device_kernel(mesh: Mesh, head, spec: _Spec):
    """`_suite_kernel` run by every device of `mesh` on its own rows (`jax.shard_map`).

    Every result is per document, so no device talks to another: no collectives.
    """
    rows = P(parallel.DATA_AXIS)
    body = functools.partial(_packed_outputs, head=head, spec=spec)
    mapped = jax.shard_map(
        body, mesh=mesh, in_specs=(rows,) * 7 + (P(), P(), P()), out_specs=rows, check_vma=False
    )
    return jax.jit(mapped)


def _curve_columns(curve: RemovalCurve, spec: _Spec) -> RemovalCurve:
    """Drops the fields the config did not ask for (they hold -1 / NaN filler)."""
    return curve._replace(
        gap=curve.gap if spec.min_flip else None,
        gap_frac=curve.gap_frac if spec.min_flip else None,
        aopc_comp=curve.aopc_comp if spec.aopc else None,
        aopc_comp_frac=curve.aopc_comp_frac if spec.aopc else None,
        aopc_suff=curve.aopc_suff if spec.aopc and spec.sufficiency else None,
        aopc_suff_frac=curve.aopc_suff_frac if spec.aopc and spec.sufficiency else None,
    )


def _unpack(raw: _KernelOut, spec: _Spec, mask_np: np.ndarray, ids: np.ndarray) -> SuiteResults:
    """Kernel outputs of one chunk (`rows = len(ids)` real documents) -> `SuiteResults`."""
    rows = len(ids)
    raw = jax.tree.map(lambda x: np.asarray(x)[:rows], raw)
    mask_np = mask_np[:rows]
    length = mask_np.sum(-1)
    docs = raw.docs._replace(doc_id=ids.astype(np.int64), seq_len=length.astype(np.int32))
    singles = {
        name: SingleErasure(*(x[:, t] for x in raw.targets))
        for t, name in enumerate(_target_names(spec))
    }
    names = _curve_names(spec)
    rankings = {
        name: _curve_columns(RemovalCurve(*(x[:, j] for x in raw.curves)), spec)
        for j, name in enumerate(names)
    }
    min_flip = None
    if spec.min_flip:
        k_min = raw.k_min
        min_flip = MinimumFlipSet(k_min, np.where(k_min > 0, k_min / np.maximum(length, 1), -1.0))
    items = None
    if spec.store_items:
        k_valid = np.arange(mask_np.shape[1])[None, :] < length[:, None]
        c = raw.item_curves
        curves = {
            name: ItemCurve(
                c.comp[:, j][k_valid] if spec.aopc else None,
                c.suff[:, j][k_valid] if spec.sufficiency else None,
                c.order[:, j][k_valid],
            )
            for j, name in enumerate(names)
        }
        items = ItemArrays(*(x[mask_np] for x in raw.per_item), curves)
    return SuiteResults(docs, singles, rankings, min_flip, items, {})


def estimate_bytes_per_document(
    n: int, d: int, c: int, num_rankings: int, *, closed: bool, sufficiency: bool, itemsize: int
) -> int:
    """Rough working-set estimate of one document in `_suite_kernel` (bytes)."""
    curves = num_rankings * (2 if sufficiency else 1)
    if closed:
        return itemsize * (2 * n * d + 8 * (curves + 1) * n * c + 16 * num_rankings * n)
    masks = n + curves * n
    return itemsize * (2 * n * d + masks * (3 * n + 2 * d + 4 * c) + 16 * num_rankings * n)


def _build_spec(inputs: SuiteInputs, config: ErasureConfig, *, method, flags) -> _Spec:
    """The static description of the compilation (`flags`: use_scores, has_affine,
    has_predicted, has_state, r_given, devices)."""
    ranking_names = tuple(r for r in config.rankings if r != "norm" or flags["has_affine"])
    return _Spec(
        use_scores=flags["use_scores"],
        closed=method == "closed_form",
        has_affine=flags["has_affine"],
        has_predicted=flags["has_predicted"],
        ranking_names=ranking_names,
        extra_names=inputs.extra_names,
        num_random=config.num_random,
        random_mode=config.random_mode,
        seed=config.seed,
        aopc_fractions=tuple(config.aopc_fractions),
        aopc=config.aopc,
        sufficiency=config.sufficiency,
        min_flip=flags["has_affine"] and config.minimum_flip_set,
        r_given=flags["r_given"],
        store_items=config.store_item_arrays,
        head_state=flags["has_state"],
    )


def _chunk_size(inputs: SuiteInputs, spec: _Spec, config: ErasureConfig, devices: int) -> int:
    """Documents per kernel call within `config.memory_budget_bytes` (a multiple of devices)."""
    b, n, d = inputs.values.shape
    num_rankings = len(_curve_names(spec))
    per_doc = estimate_bytes_per_document(
        n,
        d,
        inputs.num_classes,
        num_rankings,
        closed=spec.closed,
        sufficiency=config.sufficiency,
        itemsize=inputs.values.dtype.itemsize,
    )
    chunk = int(max(1, min(b, config.memory_budget_bytes // max(per_doc, 1))))
    if devices > 1:  # every chunk splits evenly over the devices (filler rows are dropped)
        chunk = -(-chunk // devices) * devices
    return chunk


def _run_chunks(
    run_kernel, inputs: SuiteInputs, head, head_state, spec: _Spec, chunk: int
) -> SuiteResults:
    """The kernel over consecutive chunks of documents, joined."""
    b = inputs.values.shape[0]
    # Host arrays go to the jitted kernel as they are (its C++ dispatch transfers them faster
    # than one jnp.asarray call each).
    ids32 = inputs.doc_ids.astype(np.int32)
    per_doc = [inputs.values, inputs.attn, inputs.mask, inputs.predicted, ids32, inputs.r_ext]
    pieces = []
    for start in range(0, b, chunk):
        stop = min(start + chunk, b)
        take = np.arange(start, start + chunk)
        take[stop - start :] = start  # pad the last chunk with copies of its first row
        if chunk == b:
            args, extras = per_doc, inputs.extra_scores
        else:
            args = [x[take] for x in per_doc]
            extras = tuple(x[take] for x in inputs.extra_scores)
        args = (*args, extras, inputs.kernel, inputs.bias, head_state)
        raw = packing.unpack(jax.device_get(run_kernel(*args)), _output_layout(args, head, spec))
        ids = inputs.doc_ids[start:stop]
        pieces.append(_unpack(raw, spec, inputs.mask[start:stop], ids))
    return concatenate_results(pieces)


def run_suite(
    values: jax.Array | np.ndarray,
    scores: jax.Array | np.ndarray | None,
    mask: jax.Array | np.ndarray,
    *,
    head: Callable[..., jax.Array] | None = None,
    head_state: Any = None,
    affine: AffineParams | tuple | None = None,
    predicted: np.ndarray | None = None,
    config: ErasureConfig,
    extra_rankings: Mapping[str, np.ndarray] | None = None,
    r_indices: np.ndarray | Mapping[str, np.ndarray] | None = None,
    weights: jax.Array | np.ndarray | None = None,
    doc_ids: np.ndarray | None = None,
    mesh: Mesh | None = None,
) -> SuiteResults:
    """Run all erasure tests on one batch of attention inputs.

    Args:
      values: `[batch, items, dim]` attention-layer inputs h_i (float32 or float64).
      scores: `[batch, items]` unnormalised scores; attention = masked softmax. Pass None and give
        `weights` instead to use attention weights directly.
      mask: bool `[batch, items]`, True at real items.
      head: `head(values [batch, items, dim], weights [batch, items]) -> logits [batch, classes]`,
        the classifier after the attention layer, weights used as given (no renormalisation); with
        `head_state`, `head(head_state, values, weights)`. Must be hashable (functions are): it
        is a static argument of the jitted kernel. Optional when `affine` is given.
      head_state: a pytree of arrays (e.g. the state of `nnx.split(model)`) passed to `head` as a
        dynamic argument of the kernel, so that parameters are neither compiled into the program
        nor kept alive by the kernel cache.
      affine: `(kernel [dim, classes], bias [classes])` when the head is affine; enables the closed
        form, the exact minimum flip set, the optimality gaps and the "norm" ranking.
      predicted: int `[batch]`, the full model's prediction yhat; default: the head's own argmax.
      config: an `ErasureConfig`.
      extra_rankings: name -> `[batch, items]` scores, ranked descending like the built-ins.
      r_indices: externally supplied random comparison positions: an int `[batch]` array used for
        all three comparisons, or a mapping with keys among "attention", "gradient",
        "grad_x_attention". Ignored for documents with fewer than 2 items.
      weights: `[batch, items]` attention weights, used instead of `scores`.
      doc_ids: int `[batch]` document ids (default 0..batch-1); they seed the per-document random
        draws, so pass distinct ids when calling once per batch.
      mesh: run the documents split over this mesh's "data" axis
        (`attn_interp.parallel.data_mesh()`), each device on its own rows (several CPU devices
        use several cores). Results equal one device's up to float rounding; the batch need not
        divide the device count. None: one device.

    Returns:
      a `SuiteResults` of numpy arrays (`attn_interp.erasure.results`).
    """
    inputs, method, r_given = check_inputs(
        values,
        scores,
        weights,
        mask,
        head=head,
        head_state=head_state,
        affine=affine,
        predicted=predicted,
        config=config,
        extra_rankings=extra_rankings,
        r_indices=r_indices,
        doc_ids=doc_ids,
    )
    mesh = parallel.resolve_mesh(mesh) if mesh is not None else None  # checks its axes
    devices = parallel.data_size(mesh) if mesh is not None else 1
    flags = {
        "use_scores": scores is not None,
        "has_affine": affine is not None,
        "has_predicted": predicted is not None,
        "has_state": head_state is not None,
        "r_given": r_given,
        "devices": devices,
    }
    spec = _build_spec(inputs, config, method=method, flags=flags)
    kernel_head = None if spec.closed else head
    if devices > 1:
        run_kernel = _per_device_kernel(mesh, kernel_head, spec)
    else:
        run_kernel = functools.partial(_suite_kernel, head=kernel_head, spec=spec)
    chunk = _chunk_size(inputs, spec, config, devices)
    return _run_chunks(run_kernel, inputs, kernel_head, head_state, spec, chunk)


_FRACTION_DENOMINATOR = 10_000


def aopc_k(n, fraction: float):
    """k = ceil(fraction * n), at least 1 and at most n, in exact integer arithmetic.

    `fraction` is rounded to a multiple of 1e-4 first (so 0.1 * 10 gives 1, not 2 by round-off).
    Works on Python ints, numpy and jax integer arrays.
    """
    num = round(fraction * _FRACTION_DENOMINATOR)
    k = (num * n + _FRACTION_DENOMINATOR - 1) // _FRACTION_DENOMINATOR
    if isinstance(n, int):
        return min(max(k, 1), max(n, 1))
    xp = jnp if isinstance(n, jax.Array) else np
    return xp.clip(k, 1, xp.maximum(n, 1))
