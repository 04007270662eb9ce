"""Parameter initialisers that reproduce the PyTorch / AllenNLP initialisation
(paper_notes.md §1.4-1.6)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def torch_default_uniform(fan_in: int) -> jax.nn.initializers.Initializer:
    """PyTorch's default Linear/Conv init for weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def lstm_hidden_bias(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """AllenNLP's `lstm_hidden_bias`: zeros, then ones at `[len // 4, 2 * (len // 4))`.

    Applied to a GRU bias of length 3H in (r, z, n) order this sets the tail of the reset block and
    the head of the update block to 1 (paper_notes.md §1.5, Q11). `key` is unused.
    """
    del key
    if len(shape) != 1:
        raise ValueError(f"lstm_hidden_bias initialises a bias vector, got shape {shape}.")
    quarter = shape[0] // 4
    return jnp.zeros(shape, dtype).at[quarter : 2 * quarter].set(1.0)
