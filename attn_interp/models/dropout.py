"""Dropout that draws two keep/drop decisions from each 32-bit random word.

`jax.random.bernoulli` spends one threefry output (32 bits) per element, and on CPU generating
them was a quarter of a HAN-rnn training step (profile of the packed step: the threefry rounds
over the `[rows, width, 200]` embeddings). Here each element compares 16 random bits with
round(keep * 2^16), so the keep probability is exact to 2^-17 (bernoulli's float32 uniform
resolves 2^-24) for half the random words.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def keep_mask(key: jax.Array, keep: float, shape: tuple[int, ...]) -> jax.Array:
    """Bool `shape`, each element True with probability round(keep * 2^16) / 2^16, independently."""
    n = int(np.prod(shape))
    words = jax.random.bits(key, ((n + 1) // 2,), jnp.uint32)
    halves = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:n]
    return (halves < np.uint32(round(keep * 65536))).reshape(shape)


class Dropout(nnx.Dropout):
    """`nnx.Dropout` (same state, same `train()` / `eval()` switch) with `keep_mask`."""

    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None, rngs=None):
        """inputs `[...]` -> inputs / keep where kept, 0 where dropped (training mode only)."""
        deterministic = self.deterministic if deterministic is None else deterministic
        if self.rate == 0.0 or deterministic or self.broadcast_dims or rngs is not None:
            return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
        keep = 1.0 - self.rate
        mask = keep_mask(self.rngs(), keep, inputs.shape)
        return jnp.where(mask, inputs / keep, jnp.zeros_like(inputs))
