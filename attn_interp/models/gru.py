"""Masked bidirectional GRU with PyTorch `torch.nn.GRU` semantics (paper.md §1.5).

r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
h' = (1 - z) * n + z * h

Parameters are stored transposed relative to PyTorch (`kernel_ih [in, 3H] = weight_ih.T`), with the
gate blocks in PyTorch's (r, z, n) order. At masked (padding) positions the state is carried over
unchanged and the output is zero, so for masks that are a prefix of each row (the data contract)
the backward direction starts at each sequence's last valid item, exactly like packed sequences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_interp.models.initializers import lstm_hidden_bias


def gru_scan(
    input_proj: jax.Array,
    mask: jax.Array,
    kernel_hh: jax.Array,
    bias_hh: jax.Array,
    *,
    reverse: bool,
) -> jax.Array:
    """Runs one GRU direction over time.

    input_proj: `[batch, time, 3H]` = x @ kernel_ih + bias_ih; mask: bool `[batch, time]`;
    kernel_hh: `[H, 3H]`; bias_hh: `[3H]`. Returns outputs `[batch, time, H]`, zero where masked.
    The initial state is zero; masked steps leave the state unchanged.
    """
    batch, _, three_h = input_proj.shape
    hidden = three_h // 3
    h0 = jnp.zeros((batch, hidden), input_proj.dtype)

    def step(h, inputs):
        xp, m = inputs
        hp = h @ kernel_hh + bias_hh
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h_new = (1.0 - z) * n + z * h
        m = m[:, None]
        h_next = jnp.where(m, h_new, h)
        return h_next, jnp.where(m, h_new, 0.0)

    xs = (jnp.swapaxes(input_proj, 0, 1), jnp.swapaxes(mask, 0, 1))
    _, outputs = jax.lax.scan(step, h0, xs, reverse=reverse)
    return jnp.swapaxes(outputs, 0, 1)


class GRUDirection(nnx.Module):
    """Parameters of one GRU direction: xavier weight_ih, orthogonal weight_hh, zero bias_ih."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        *,
        rngs: nnx.Rngs,
        hidden_bias: str = "lstm_hidden_bias",
        param_dtype=jnp.float32,
    ):
        init = jax.nn.initializers
        self.hidden = hidden
        self.kernel_ih = nnx.Param(
            init.xavier_uniform()(rngs.params(), (in_features, 3 * hidden), param_dtype)
        )
        self.kernel_hh = nnx.Param(
            init.orthogonal()(rngs.params(), (hidden, 3 * hidden), param_dtype)
        )
        self.bias_ih = nnx.Param(jnp.zeros((3 * hidden,), param_dtype))
        bias_init = lstm_hidden_bias if hidden_bias == "lstm_hidden_bias" else init.zeros
        self.bias_hh = nnx.Param(bias_init(rngs.params(), (3 * hidden,), param_dtype))

    def __call__(self, x: jax.Array, mask: jax.Array, *, reverse: bool) -> jax.Array:
        """x `[batch, time, in]`, mask bool `[batch, time]` -> `[batch, time, H]` (zero at padding)."""
        input_proj = x @ self.kernel_ih[...] + self.bias_ih[...]
        return gru_scan(input_proj, mask, self.kernel_hh[...], self.bias_hh[...], reverse=reverse)


class BiGRU(nnx.Module):
    """Bidirectional masked GRU; output `[forward; backward]` of size 2H, zero at padding."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        *,
        rngs: nnx.Rngs,
        hidden_bias: str = "lstm_hidden_bias",
        param_dtype=jnp.float32,
    ):
        kwargs = dict(rngs=rngs, hidden_bias=hidden_bias, param_dtype=param_dtype)
        self.forward = GRUDirection(in_features, hidden, **kwargs)
        self.backward = GRUDirection(in_features, hidden, **kwargs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x `[batch, time, in]`, mask bool `[batch, time]` -> `[batch, time, 2H]`."""
        fwd = self.forward(x, mask, reverse=False)
        bwd = self.backward(x, mask, reverse=True)
        return jnp.concatenate([fwd, bwd], axis=-1)
