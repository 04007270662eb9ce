"""Exact minimum flip set for an affine head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.kernels import item_logits, minimum_flip_set_from_z


@jax.jit
def _min_flip(values, weights, mask, kernel, bias, predicted):
    z = item_logits(values, kernel)
    return minimum_flip_set_from_z(z, weights, mask, bias, predicted)


def minimum_flip_set(
    values: jax.Array | np.ndarray,
    weights: jax.Array | np.ndarray,
    mask: jax.Array | np.ndarray,
    affine: AffineParams | tuple,
    predicted: jax.Array | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest number of items whose removal (zero + renormalise) changes an affine decision.

    Args:
      values: `[batch, items, dim]`; weights: `[batch, items]` attention (0 at padding);
      mask: bool `[batch, items]`; affine: `(kernel [dim, classes], bias [classes])`;
      predicted: int `[batch]`, the decision to flip away from.

    Returns:
      k_min int32 `[batch]` (-1 when no removal flips, including removing everything, which
      leaves the bias alone) and a bool `[batch, items]` mask of one minimum set.
    """
    values = jnp.asarray(values)
    kernel, bias = (jnp.asarray(a, values.dtype) for a in affine)
    if kernel.shape[0] != values.shape[-1] or bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"affine must be (kernel [dim={values.shape[-1]}, classes], bias [classes]); got "
            f"{kernel.shape} and {bias.shape}."
        )
    k, members = _min_flip(
        values,
        jnp.asarray(weights, values.dtype),
        jnp.asarray(mask, bool),
        kernel,
        bias,
        jnp.asarray(predicted, jnp.int32),
    )
    return np.asarray(k), np.asarray(members)
