"""The checks and normalisation of `run_suite`'s arguments, before anything is compiled.

Every argument error is a one-line `ValueError` / `TypeError` naming the argument and the shape or
value it needs; `check_inputs` returns them as a `SuiteInputs` in the form the kernel takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.config import ErasureConfig
from attn_interp.erasure.results import SINGLE_TARGETS

# `run_suite(r_indices={...})` keys -> the result's random-comparison prefix.
R_INDEX_KEYS = {"attention": "rand", "gradient": "grad_rand", "grad_x_attention": "gxa_rand"}


def _as_int_array(x, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}.")
    return arr


class SuiteInputs(NamedTuple):
    """Checked inputs of `run_suite` (host numpy or device arrays, as the kernel takes them)."""

    values: jax.Array  # [B, n, d]
    attn: jax.Array  # [B, n] scores or weights, values' dtype
    mask: np.ndarray  # bool [B, n]
    predicted: np.ndarray  # int32 [B] (zeros when not given)
    doc_ids: np.ndarray  # [B]
    r_ext: np.ndarray  # int32 [B, 3] external random comparison items (-1: not given)
    extra_names: tuple[str, ...]
    extra_scores: tuple[jax.Array, ...]  # [B, n] each
    kernel: jax.Array  # [d, C] (a scalar zero without an affine head)
    bias: jax.Array  # [C]
    num_classes: int


def _check_arrays(values, scores, weights, mask) -> tuple[jax.Array, jax.Array, np.ndarray]:
    values = jnp.asarray(values)
    if values.ndim != 3:
        raise ValueError(f"values must be [batch, items, dim], got shape {values.shape}.")
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ValueError(f"values must be floating point, got {values.dtype}.")
    b, n, _ = values.shape
    mask_np = np.asarray(mask).astype(bool)
    if mask_np.shape != (b, n):
        raise ValueError(f"mask must have shape {(b, n)} to match values, got {mask_np.shape}.")
    if (scores is None) == (weights is None):
        raise ValueError("pass exactly one of scores (masked softmax is applied) or weights.")
    attn = jnp.asarray(scores if scores is not None else weights, dtype=values.dtype)
    if attn.shape != (b, n):
        raise ValueError(f"scores/weights must have shape {(b, n)}, got {attn.shape}.")
    return values, attn, mask_np


def _check_affine(affine, values: jax.Array):
    """(kernel [d, C], bias [C]) in values' dtype; scalar zeros without an affine head."""
    if affine is None:
        return jnp.zeros((), values.dtype), jnp.zeros((), values.dtype)
    d = values.shape[2]
    kernel, bias = (jnp.asarray(a, dtype=values.dtype) for a in affine)
    if kernel.ndim != 2 or kernel.shape[0] != d:
        raise ValueError(
            f"affine kernel must be [dim={d}, classes], got {kernel.shape} "
            "(a PyTorch-style [classes, dim] matrix needs a transpose)."
        )
    if bias.shape != (kernel.shape[1],):
        raise ValueError(f"affine bias must be [{kernel.shape[1]}], got {bias.shape}.")
    return kernel, bias


def _resolve_method(config: ErasureConfig, has_affine: bool, head) -> str:
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
    return method


def _head_classes(head, head_state, values, attn, kernel) -> int:
    """Number of classes: the affine kernel's, else the head's output width (checked)."""
    if kernel.ndim == 2:
        return int(kernel.shape[1])
    args = (values, attn) if head_state is None else (head_state, values, attn)
    out_shape = jax.eval_shape(head, *args)
    if len(out_shape.shape) != 2 or out_shape.shape[0] != values.shape[0]:
        raise ValueError(f"head must return [batch, classes] logits, got {out_shape.shape}.")
    return int(out_shape.shape[1])


def _check_extras(extra_rankings, config: ErasureConfig, values: jax.Array):
    """(names, `[B, n]` score arrays in values' dtype) of the caller's extra rankings."""
    b, n, _ = values.shape
    reserved = set(SINGLE_TARGETS) | set(config.rankings) | {"norm"}
    reserved |= {f"random{i}" for i in range(config.num_random)}
    names, arrays = [], []
    for name, arr in dict(extra_rankings or {}).items():
        if name in reserved or not name.isidentifier():
            raise ValueError(f"extra ranking name {name!r} is reserved or not an identifier.")
        arr = np.asarray(arr)
        if arr.shape != (b, n):
            raise ValueError(f"extra ranking {name!r} must have shape {(b, n)}, got {arr.shape}.")
        names.append(name)
        arrays.append(jnp.asarray(arr, values.dtype))
    return tuple(names), tuple(arrays)


def _check_r_indices(r_indices, mask_np: np.ndarray) -> tuple[np.ndarray, tuple[bool, ...]]:
    """(int32 `[B, 3]` given random comparison items, -1 elsewhere; which of the 3 are given)."""
    b, n = mask_np.shape
    length = mask_np.sum(-1)
    r_given = [False, False, False]
    r_arr = np.full((b, 3), -1, np.int32)
    if r_indices is None:
        return r_arr, tuple(r_given)
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
    return r_arr, tuple(r_given)


def _check_predicted(predicted, b: int, num_classes: int) -> np.ndarray:
    if predicted is None:
        return np.zeros(b, np.int32)
    pred_np = _as_int_array(predicted, "predicted", (b,))
    if ((pred_np < 0) | (pred_np >= num_classes)).any():
        raise ValueError(
            f"predicted must lie in [0, {num_classes}); got {pred_np.min()}..{pred_np.max()}."
        )
    return pred_np.astype(np.int32)


def check_inputs(
    values,
    scores,
    weights,
    mask,
    *,
    head,
    head_state,
    affine,
    predicted,
    config: ErasureConfig,
    extra_rankings,
    r_indices,
    doc_ids,
) -> tuple[SuiteInputs, str, tuple[bool, ...]]:
    """`run_suite`'s arguments checked and normalised: (inputs, method, which random comparison
    items are given)."""
    values, attn, mask_np = _check_arrays(values, scores, weights, mask)
    b = values.shape[0]
    kernel, bias = _check_affine(affine, values)
    method = _resolve_method(config, affine is not None, head)
    num_classes = _head_classes(head, head_state, values, attn, kernel)
    ids_np = _as_int_array(doc_ids, "doc_ids", (b,)) if doc_ids is not None else np.arange(b)
    extra_names, extra_scores = _check_extras(extra_rankings, config, values)
    r_arr, r_given = _check_r_indices(r_indices, mask_np)
    pred_np = _check_predicted(predicted, b, num_classes)
    inputs = SuiteInputs(
        values,
        attn,
        mask_np,
        pred_np,
        ids_np,
        r_arr,
        extra_names,
        extra_scores,
        kernel,
        bias,
        num_classes,
    )
    return inputs, method, r_given
