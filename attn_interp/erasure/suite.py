"""`run_suite`: every erasure test of the paper (and extensions) for one batch, in one jitted call.

Results are a flat `dict[str, np.ndarray]`:

* per-instance arrays `[batch]` (doc_id, seq_len, predicted, single-erasure targets, per-ranking
  first flips, AOPC, minimum flip set, ...);
* ragged per-item arrays under keys starting with "items/", the valid entries of every document
  concatenated in document order (each document contributes `seq_len` entries: per-position values
  over its valid positions in position order, or per-k curves for k = 1..seq_len).

Both kinds concatenate across batches of different widths (`concatenate_results`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from attn_interp import parallel
from attn_interp.erasure import kernels as K
from attn_interp.erasure.config import AffineParams, ErasureConfig
from attn_interp.erasure.divergence import LN2, js_and_kl_from_change, js_and_kl_raw

# Single-erasure targets: name -> (ranking giving the ordering, position in that ordering).
SINGLE_TARGETS = {
    "top": ("attention", 0),
    "second": ("attention", 1),
    "lowest": ("attention_asc", 0),
    "second_lowest": ("attention_asc", 1),
    "grad_top": ("gradient", 0),
    "grad_second": ("gradient", 1),
    "gxa_top": ("grad_x_attention", 0),
    "gxa_second": ("grad_x_attention", 1),
}
# Random comparison items: name -> the top item it is compared with.
RANDOM_TARGETS = {"rand": "top", "grad_rand": "grad_top", "gxa_rand": "gxa_top"}
R_INDEX_KEYS = {"attention": "rand", "gradient": "grad_rand", "grad_x_attention": "gxa_rand"}


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
    host_sorts: bool  # numpy sort callbacks on CPU (off in the per-device suite, see K.host_sorts)


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
# Columns of the stacked kernel outputs (unpacked on the host by `_unpack`).
_TARGET_FLOAT = ("weight", "js", "kl")
_TARGET_INT = ("index", "flip")
_RANK_INT = ("k", "gap")
_RANK_FLOAT = (
    "frac",
    "probmass",
    "gap_frac",
    "aopc_comp",
    "aopc_comp_frac",
    "aopc_suff",
    "aopc_suff_frac",
)


def _target_names(spec: _Spec) -> tuple[str, ...]:
    return (
        tuple(SINGLE_TARGETS)
        + tuple(RANDOM_TARGETS)
        + tuple(f"random{i}_first" for i in range(spec.num_random))
    )


def _curve_names(spec: _Spec) -> tuple[str, ...]:
    randoms = tuple(f"random{i}" for i in range(spec.num_random))
    return spec.ranking_names + spec.extra_names + randoms


def _suite_body(*args, head, spec: _Spec):
    with K.host_sorts(spec.host_sorts):
        return _suite_outputs(*args, head=head, spec=spec)


def _suite_outputs(
    values, scores, mask, predicted, doc_ids, r_ext, extra_scores, kernel, bias, *, head, spec
):
    dtype = values.dtype
    mask = mask.astype(bool)
    b, n = mask.shape
    length = jnp.sum(mask, axis=-1).astype(jnp.int32)
    alpha = K.masked_softmax(scores, mask) if spec.use_scores else jnp.where(mask, scores, 0.0)
    alpha = alpha.astype(dtype)
    z = K.item_logits(values, kernel) if spec.has_affine else None

    # Original output of the head on the unmodified weights (quirk Q10 check).
    if spec.closed:
        base = jnp.einsum("bn,bnc->bc", alpha, z, precision=K.HIGHEST) + bias
    else:
        base = head(values, alpha)
    y0 = jnp.argmax(base, axis=-1).astype(jnp.int32)
    y = predicted.astype(jnp.int32) if spec.has_predicted else y0
    p0_y = K.predicted_probability(base, y)

    # Gradient of p_yhat with respect to the weights as free inputs.
    if spec.closed:
        grad = K.affine_attention_gradient(z, alpha, mask, bias, y)
    else:
        grad = K.attention_gradient(head, values, alpha, mask, y)

    # All single erasures (class-major rows in the closed form with up to 32 classes). The closed
    # form's divergences come from the exact change of the logits (class-major).
    if spec.closed:
        single, change = K.closed_form_singles(alpha, z, bias, unit_mass=spec.use_scores)
        js_raw, kl_raw = js_and_kl_from_change(base[:, :, None], change, axis=1)
    else:
        single = K.blocked_masked_head_logits(
            head, values, alpha, K.single_keep_masks, (mask,), masks_per_doc=n
        )
        js_raw, kl_raw = js_and_kl_raw(base[:, None, :], single)
    if isinstance(single, list):
        single_pred = K.argmax_rows(single)
    else:
        single_pred = jnp.argmax(single, axis=-1).astype(jnp.int32)
    single_js = jnp.where(mask, jnp.clip(js_raw, 0.0, LN2), 0.0)
    single_kl = jnp.where(mask, jnp.maximum(kl_raw, 0.0), 0.0)
    single_flip = jnp.where(mask & (single_pred != y[:, None]), single_pred, -1)

    # Every ordering from one stable sort: built-in rankings, extras, random keys.
    names = tuple(dict.fromkeys(_TARGET_ORDER_RANKINGS + spec.ranking_names))
    score_rows = [_ranking_scores(name, alpha, grad, single_js, z) for name in names]
    score_rows += [s.astype(dtype) for s in extra_scores]
    score_keys = K.descending_keys(jnp.stack(score_rows, axis=1), mask[:, None, :])
    random_keys = K.random_sort_keys(mask, doc_ids, spec.seed, spec.num_random)
    all_orders = K.ascending_order(
        jnp.concatenate([score_keys, random_keys.astype(score_keys.dtype)], axis=1)
    )
    row_of = {name: i for i, name in enumerate(names + spec.extra_names)}
    row_of.update({f"random{i}": len(row_of) + i for i in range(spec.num_random)})

    # Single-erasure targets (gathered together).
    target_idx, target_ok = [], []
    for rname, pos in SINGLE_TARGETS.values():
        target_idx.append(all_orders[:, row_of[rname], pos])
        target_ok.append(length >= pos + 1)
    tops = jnp.stack(
        [target_idx[list(SINGLE_TARGETS).index(t)] for t in RANDOM_TARGETS.values()], 1
    )
    tops = jnp.where(length[:, None] >= 1, tops, 0)
    u = K.comparison_uniforms(doc_ids, spec.seed, len(RANDOM_TARGETS))
    r = K.random_other_items(u, mask, tops, spec.random_mode)
    for j in range(len(RANDOM_TARGETS)):
        r_j = jnp.where(length >= 2, r_ext[:, j], -1) if spec.r_given[j] else r[:, j]
        target_idx.append(r_j)
        target_ok.append((length >= 2) & (r_j >= 0))
    for i in range(spec.num_random):
        target_idx.append(all_orders[:, row_of[f"random{i}"], 0])
        target_ok.append(length >= 1)
    t_idx = jnp.stack(target_idx, axis=1)  # [B, T]
    t_ok = jnp.stack(target_ok, axis=1)
    safe = jnp.clip(t_idx, 0, n - 1)
    t_float = K.gather_items(jnp.stack([alpha, single_js, single_kl], -1), safe)  # [B, T, 3]
    t_float = jnp.where(t_ok[..., None], t_float, jnp.nan)
    t_flip = jnp.where(t_ok, jnp.take_along_axis(single_flip, safe, 1), -1)
    t_int = jnp.stack([jnp.where(t_ok, t_idx, -1), t_flip], -1)  # [B, T, 2]

    # Prefix removals (and keep-only-top-k) along every ranking with a curve.
    curve_rows = jnp.asarray([row_of[name] for name in _curve_names(spec)], jnp.int32)
    orders = all_orders[:, curve_rows]  # [B, R, n]
    num_r = orders.shape[1]
    len_f = jnp.maximum(length, 1).astype(dtype)[:, None]
    if spec.closed:
        curves = K.closed_form_removal(
            alpha, z, bias, orders, y, length, kept=spec.sufficiency, probabilities=spec.aopc
        )
        k_flip = curves["k"]
        p_removed, p_kept = curves.get("p_removed"), curves.get("p_kept")
    else:
        tops = (False, True) if spec.sufficiency else (False,)

        def keep_fn(o, m):  # [g, R, n], [g, n] -> [g, R' * n(k), n]
            keep = jnp.concatenate([K.prefix_keep_masks(o, m, keep_top=t) for t in tops], 1)
            return keep.reshape(o.shape[0], -1, n)

        logits = K.blocked_masked_head_logits(
            head, values, alpha, keep_fn, (orders, mask), masks_per_doc=len(tops) * num_r * n
        )
        logits = logits.reshape(b, len(tops) * num_r, n, -1)
        k_flip, _ = K.first_flip(logits[:, :num_r], y, length)
        p_removed = p_kept = None
        if spec.aopc:
            p_all = K.predicted_probability(logits, y[:, None, None])
            p_removed, p_kept = p_all[:, :num_r], p_all[:, num_r:]

    probmass = jnp.where(k_flip > 0, K.removed_mass_at(alpha, orders, k_flip), -1.0)
    frac = jnp.where(k_flip > 0, k_flip / len_f, -1.0)
    nan = jnp.full_like(frac, jnp.nan)
    comp = suff = None
    comp_full = comp_frac = suff_full = suff_frac = nan
    if spec.aopc:
        valid_k = jnp.arange(1, n + 1)[None, None, :] <= length[:, None, None]
        frac_k = jnp.stack([aopc_k(length, f) for f in spec.aopc_fractions], axis=1) - 1  # [B, F]
        frac_k = jnp.broadcast_to(frac_k[:, None, :], (b, num_r, frac_k.shape[1]))

        def drop_curve(p_k):
            drop = p0_y[:, None, None] - p_k
            full = jnp.sum(jnp.where(valid_k, drop, 0.0), axis=2) / len_f
            return drop, full, jnp.mean(jnp.take_along_axis(drop, frac_k, 2), axis=2)

        comp, comp_full, comp_frac = drop_curve(p_removed)
        suff = comp
        if spec.sufficiency:
            suff, suff_full, suff_frac = drop_curve(p_kept)

    out = {
        "doc_int": jnp.stack(
            [
                y,
                y0,
                (y != y0).astype(jnp.int32),
                jnp.sum(mask & (js_raw < 0), -1),
                jnp.sum(mask & (kl_raw < 0), -1),
            ],
            -1,
        ).astype(jnp.int32),
        "p_predicted": p0_y,
        "t_int": t_int,
        "t_float": t_float,
    }
    if spec.min_flip:
        k_min, _ = K.minimum_flip_set_from_z(z, alpha, mask, bias, y)
        out["k_min"] = k_min
        both = (k_flip > 0) & (k_min[:, None] > 0)
        gap = jnp.where(both, k_flip - k_min[:, None], -1)
        gap_frac = jnp.where(both, gap / len_f, jnp.nan)
    else:
        gap = jnp.full_like(k_flip, -1)
        gap_frac = nan
    out["r_int"] = jnp.stack([k_flip, gap], -1)
    out["r_float"] = jnp.stack(
        [frac, probmass, gap_frac, comp_full, comp_frac, suff_full, suff_frac], -1
    )
    if spec.store_items:
        out["pos"] = jnp.stack([alpha, grad, single_js, single_kl], -1)
        out["pos_flip"] = single_flip
        if spec.aopc:
            out["curves"] = jnp.stack([comp, suff], -1)  # [B, R, n, 2]
        out["curve_orders"] = orders
    return out


_suite_kernel = jax.jit(_suite_body, static_argnames=("head", "spec"))


@functools.lru_cache(maxsize=64)
def _per_device_kernel(mesh: Mesh, head, spec: _Spec):
    """`_suite_kernel` run by every device of `mesh` on its own rows (`jax.shard_map`).

    Every result is per document, so no device talks to another: no collectives. Sorting uses
    `jax.lax.sort` (`spec.host_sorts` is False): under plain SPMD partitioning the numpy sort
    callbacks forced the whole batch onto one device, and on a CPU with as many devices as pool
    threads every thread could end up waiting inside a callback (a deadlock).
    """
    rows = P(parallel.DATA_AXIS)
    body = functools.partial(_suite_body, head=head, spec=spec)
    mapped = jax.shard_map(
        body, mesh=mesh, in_specs=(rows,) * 7 + (P(), P()), out_specs=rows, check_vma=False
    )
    return jax.jit(mapped)


def _unpack(raw: dict, spec: _Spec, mask_np: np.ndarray, rows: int) -> dict[str, np.ndarray]:
    """Stacked kernel outputs for one chunk -> named per-instance and ragged item arrays."""
    raw = {k: np.asarray(v)[:rows] for k, v in raw.items()}
    mask_np = mask_np[:rows]
    length = mask_np.sum(-1)
    out: dict[str, np.ndarray] = {}
    doc = raw["doc_int"]
    out["predicted"], out["predicted_head"] = doc[:, 0], doc[:, 1]
    out["prediction_mismatch"] = doc[:, 2].astype(bool)
    out["js_clipped"], out["kl_clipped"] = doc[:, 3], doc[:, 4]
    out["p_predicted"] = raw["p_predicted"]
    for t, tname in enumerate(_target_names(spec)):
        for c, col in enumerate(_TARGET_INT):
            out[f"single_{tname}_{col}"] = raw["t_int"][:, t, c]
        for c, col in enumerate(_TARGET_FLOAT):
            out[f"single_{tname}_{col}"] = raw["t_float"][:, t, c]
    for top, rand, prefix in (
        ("top", "rand", ""),
        ("grad_top", "grad_rand", "grad_"),
        ("gxa_top", "gxa_rand", "gxa_"),
    ):
        for col, short in (("weight", "alpha"), ("js", "js")):
            out[f"{prefix}delta_{short}"] = out[f"single_{top}_{col}"] - out[f"single_{rand}_{col}"]
    if spec.min_flip:
        k_min = raw["k_min"]
        out["k_min"] = k_min
        out["k_min_frac"] = np.where(k_min > 0, k_min / np.maximum(length, 1), -1.0)
    for j, name in enumerate(_curve_names(spec)):
        for c, col in enumerate(_RANK_INT):
            if col == "gap" and not spec.min_flip:
                continue
            out[f"rank_{name}_{col}"] = raw["r_int"][:, j, c]
        for c, col in enumerate(_RANK_FLOAT):
            if (
                (col == "gap_frac" and not spec.min_flip)
                or (col.startswith("aopc") and not spec.aopc)
                or (col.startswith("aopc_suff") and not spec.sufficiency)
            ):
                continue
            out[f"rank_{name}_{col}"] = raw["r_float"][:, j, c]
    if spec.store_items:
        for c, col in enumerate(("alpha", "gradient", "single_js", "single_kl")):
            out[f"items/{col}"] = raw["pos"][..., c][mask_np]
        out["items/single_flip"] = raw["pos_flip"][mask_np]
        k_valid = np.arange(mask_np.shape[1])[None, :] < length[:, None]
        for j, name in enumerate(_curve_names(spec)):
            if spec.aopc:
                out[f"items/comp_{name}"] = raw["curves"][:, j, :, 0][k_valid]
            if spec.sufficiency:
                out[f"items/suff_{name}"] = raw["curves"][:, j, :, 1][k_valid]
            out[f"items/order_{name}"] = raw["curve_orders"][:, j][k_valid]
    return out


def estimate_bytes_per_document(
    n: int, d: int, c: int, num_rankings: int, *, closed: bool, sufficiency: bool, itemsize: int
) -> int:
    """Rough working-set estimate of one document in `_suite_kernel` (bytes)."""
    curves = num_rankings * (2 if sufficiency else 1)
    if closed:
        return itemsize * (2 * n * d + 8 * (curves + 1) * n * c + 16 * num_rankings * n)
    masks = n + curves * n
    return itemsize * (2 * n * d + masks * (3 * n + 2 * d + 4 * c) + 16 * num_rankings * n)


def _as_int_array(x, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}.")
    return arr


def run_suite(
    values: jax.Array | np.ndarray,
    scores: jax.Array | np.ndarray | None,
    mask: jax.Array | np.ndarray,
    *,
    head: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    affine: AffineParams | tuple | None = None,
    predicted: np.ndarray | None = None,
    config: ErasureConfig,
    extra_rankings: Mapping[str, np.ndarray] | None = None,
    r_indices: np.ndarray | Mapping[str, np.ndarray] | None = None,
    weights: jax.Array | np.ndarray | None = None,
    doc_ids: np.ndarray | None = None,
    mesh: Mesh | None = None,
) -> dict[str, np.ndarray]:
    """Run all erasure tests on one batch of attention inputs.

    Args:
      values: `[batch, items, dim]` attention-layer inputs h_i (float32 or float64).
      scores: `[batch, items]` unnormalised scores; attention = masked softmax. Pass None and give
        `weights` instead to use attention weights directly.
      mask: bool `[batch, items]`, True at real items.
      head: `head(values [batch, items, dim], weights [batch, items]) -> logits [batch, classes]`,
        the classifier after the attention layer, weights used as given (no renormalisation). Must
        be hashable (functions are); it is a static argument of the jitted kernel. Optional when
        `affine` is given.
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
        divide the device count.

    Returns:
      dict of numpy arrays, see the module docstring.
    """
    values = jnp.asarray(values)
    if values.ndim != 3:
        raise ValueError(f"values must be [batch, items, dim], got shape {values.shape}.")
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ValueError(f"values must be floating point, got {values.dtype}.")
    b, n, d = values.shape
    mask_np = np.asarray(mask).astype(bool)
    if mask_np.shape != (b, n):
        raise ValueError(f"mask must have shape {(b, n)} to match values, got {mask_np.shape}.")
    if (scores is None) == (weights is None):
        raise ValueError("pass exactly one of scores (masked softmax is applied) or weights.")
    attn = jnp.asarray(scores if scores is not None else weights, dtype=values.dtype)
    if attn.shape != (b, n):
        raise ValueError(f"scores/weights must have shape {(b, n)}, got {attn.shape}.")

    has_affine = affine is not None
    if has_affine:
        kernel, bias = (jnp.asarray(a, dtype=values.dtype) for a in affine)
        if kernel.ndim != 2 or kernel.shape[0] != d:
            raise ValueError(
                f"affine kernel must be [dim={d}, classes], got {kernel.shape} "
                "(a PyTorch-style [classes, dim] matrix needs a transpose)."
            )
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"affine bias must be [{kernel.shape[1]}], got {bias.shape}.")
        num_classes = kernel.shape[1]
    else:
        kernel = bias = jnp.zeros((), values.dtype)
    method = config.method
    if method == "auto":
        method = "closed_form" if has_affine else "mask"
    if method == "closed_form" and not has_affine:
        raise ValueError("method='closed_form' needs affine=(kernel, bias); use method='mask'.")
    if method == "mask" and head is None:
        raise ValueError("the mask path needs head(values, weights) -> logits.")
    if head is not None:
        try:
            hash(head)
        except TypeError as e:
            raise TypeError(
                "head must be hashable (a plain function or bound method) because it is a static "
                "argument of the jitted kernel; wrap it in a function."
            ) from e
    if not has_affine:
        out_shape = jax.eval_shape(head, values, attn)
        if len(out_shape.shape) != 2 or out_shape.shape[0] != b:
            raise ValueError(f"head must return [batch, classes] logits, got {out_shape.shape}.")
        num_classes = out_shape.shape[1]

    has_predicted = predicted is not None
    pred_np = (
        _as_int_array(predicted, "predicted", (b,)) if has_predicted else np.zeros(b, np.int32)
    )
    if has_predicted and ((pred_np < 0) | (pred_np >= num_classes)).any():
        raise ValueError(
            f"predicted must lie in [0, {num_classes}); got {pred_np.min()}..{pred_np.max()}."
        )
    ids_np = _as_int_array(doc_ids, "doc_ids", (b,)) if doc_ids is not None else np.arange(b)

    extra_rankings = dict(extra_rankings or {})
    reserved = set(SINGLE_TARGETS) | set(config.rankings) | {"norm"}
    reserved |= {f"random{i}" for i in range(config.num_random)}
    extra_arrays = []
    for name, arr in extra_rankings.items():
        if name in reserved or not name.isidentifier():
            raise ValueError(f"extra ranking name {name!r} is reserved or not an identifier.")
        arr = np.asarray(arr)
        if arr.shape != (b, n):
            raise ValueError(f"extra ranking {name!r} must have shape {(b, n)}, got {arr.shape}.")
        extra_arrays.append(jnp.asarray(arr, values.dtype))

    length = mask_np.sum(-1)
    r_given = [False, False, False]
    r_arr = np.full((b, 3), -1, np.int32)
    if r_indices is not None:
        if isinstance(r_indices, Mapping):
            unknown = set(r_indices) - set(R_INDEX_KEYS)
            if unknown:
                raise ValueError(f"r_indices keys {unknown} unknown; use {tuple(R_INDEX_KEYS)}.")
            given = r_indices
        else:
            given = dict.fromkeys(R_INDEX_KEYS, r_indices)
        for j, key in enumerate(R_INDEX_KEYS):
            if key not in given:
                continue
            rj = _as_int_array(given[key], f"r_indices[{key!r}]", (b,))
            rows = length >= 2
            bad = rows & ((rj < 0) | (rj >= n) | ~mask_np[np.arange(b), np.clip(rj, 0, n - 1)])
            if bad.any():
                raise ValueError(
                    f"r_indices[{key!r}] must point at a valid item for every document with >= 2 "
                    f"items; bad rows: {np.flatnonzero(bad)[:10].tolist()}."
                )
            r_arr[:, j] = rj
            r_given[j] = True

    ranking_names = tuple(r for r in config.rankings if r != "norm" or has_affine)
    mesh = parallel.resolve_mesh(mesh)
    devices = parallel.data_size(mesh) if mesh is not None else 1
    spec = _Spec(
        use_scores=scores is not None,
        closed=method == "closed_form",
        has_affine=has_affine,
        has_predicted=has_predicted,
        ranking_names=ranking_names,
        extra_names=tuple(extra_rankings),
        num_random=config.num_random,
        random_mode=config.random_mode,
        seed=config.seed,
        aopc_fractions=tuple(config.aopc_fractions),
        aopc=config.aopc,
        sufficiency=config.sufficiency,
        min_flip=has_affine and config.minimum_flip_set,
        r_given=tuple(r_given),
        store_items=config.store_item_arrays,
        host_sorts=devices == 1,
    )
    kernel_head = None if spec.closed else head
    num_rankings = len(ranking_names) + len(extra_arrays) + config.num_random
    per_doc = estimate_bytes_per_document(
        n,
        d,
        num_classes,
        num_rankings,
        closed=spec.closed,
        sufficiency=config.sufficiency,
        itemsize=values.dtype.itemsize,
    )
    chunk = int(max(1, min(b, config.memory_budget_bytes // max(per_doc, 1))))
    if devices > 1:  # every chunk splits evenly over the devices (filler rows are dropped)
        chunk = -(-chunk // devices) * devices
        run_kernel = _per_device_kernel(mesh, kernel_head, spec)
    else:
        run_kernel = functools.partial(_suite_kernel, head=kernel_head, spec=spec)

    # Host arrays go to the jitted kernel as they are (its C++ dispatch transfers them faster
    # than one jnp.asarray call each).
    inputs = [values, attn, mask_np, pred_np.astype(np.int32), ids_np.astype(np.int32), r_arr]
    pieces = []
    for start in range(0, b, chunk):
        stop = min(start + chunk, b)
        take = np.arange(start, start + chunk)
        take[stop - start :] = start  # pad the last chunk with copies of its first row
        if chunk == b:
            args = inputs
            extras = tuple(extra_arrays)
        else:
            args = [x[take] for x in inputs]
            extras = tuple(x[take] for x in extra_arrays)
        raw = run_kernel(*args, extras, kernel, bias)
        raw = jax.device_get(raw)
        pieces.append(_unpack(raw, spec, mask_np[start:stop], stop - start))
    results = concatenate_results(pieces)
    results["doc_id"] = ids_np.astype(np.int64)
    results["seq_len"] = length.astype(np.int32)
    return results


def concatenate_results(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate results of several batches (same keys) into one results dict."""
    if not parts:
        raise ValueError("nothing to concatenate.")
    keys = list(parts[0])
    for p in parts[1:]:
        if set(p) != set(keys):
            raise ValueError(
                f"results have different keys: {sorted(set(p) ^ set(keys))[:10]} "
                "(were they produced with the same config and head type?)."
            )
    if len(parts) == 1:
        return {k: np.asarray(v) for k, v in parts[0].items()}
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}


def ranking_names(results: Mapping[str, np.ndarray]) -> list[str]:
    """The rankings present in a results dict, in insertion order."""
    return [
        k[len("rank_") : -len("_k")] for k in results if k.startswith("rank_") and k.endswith("_k")
    ]


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
