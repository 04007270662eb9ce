"""Masked bidirectional GRU with PyTorch `torch.nn.GRU` semantics (paper_notes.md §1.5).

r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
h' = (1 - z) * n + z * h

Parameters are stored transposed relative to PyTorch (`kernel_ih [in, 3H] = weight_ih.T`), with the
gate blocks in PyTorch's (r, z, n) order. At masked (padding) positions the state is carried over
unchanged and the output is zero, so for masks that are a prefix of each row (the data contract)
the backward direction starts at each sequence's last valid item, exactly like packed sequences.

`BiGRU(x, mask, segment=segment)` runs on rows that hold several sequences end to end (the packed
HAN word level, `attn_interp.types.PackedSentences`): the state restarts from zero where the segment
id changes (forward direction) and where it changes next (backward direction), so every sequence
sees exactly what it would see alone, with no padding to scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_interp.models.initializers import lstm_hidden_bias


def gru_cell(h: jax.Array, xp: jax.Array, kernel_hh: jax.Array, bias_hh: jax.Array) -> jax.Array:
    """One GRU step: state h `[rows, H]`, input projection xp `[rows, 3H]` -> new state `[rows, H]`."""
    hp = h @ kernel_hh + bias_hh
    x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


def segment_starts_and_ends(segment: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Bool `[rows, width]` pairs: first / last position of each run of equal ids along a row."""
    left = jnp.pad(segment[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
    right = jnp.pad(segment[:, 1:], ((0, 0), (0, 1)), constant_values=-1)
    return segment != left, segment != right


def bigru_scan(
    input_proj: jax.Array,
    forward: tuple[jax.Array, jax.Array],
    backward: tuple[jax.Array, jax.Array],
    *,
    mask: jax.Array | None = None,
    segment: jax.Array | None = None,
) -> jax.Array:
    """Both GRU directions in one scan; step t advances the forward state at t and the backward
    state at time - 1 - t, so one loop of `time` iterations does the work of two.

    input_proj: `[rows, time, 6H]` (forward then backward x @ kernel_ih + bias_ih); forward /
    backward: (kernel_hh `[H, 3H]`, bias_hh `[3H]`).
      mask: bool `[rows, time]`; masked steps carry the state unchanged and output zero.
      segment: int `[rows, time]`, several sequences per row end to end; the state restarts from
        zero where the id changes (the backward direction: where it changes next).
    Returns `[rows, time, 2H]` = [forward; backward].
    """
    rows, _, six_h = input_proj.shape
    three_h = six_h // 2

    def time_major(a, flip):
        a = jnp.swapaxes(a, 0, 1)[..., None]
        return jnp.flip(a, 0) if flip else a

    x = jnp.swapaxes(input_proj, 0, 1)
    xs = {"x_f": x[..., :three_h], "x_b": jnp.flip(x[..., three_h:], 0)}
    if segment is not None:
        start, end = segment_starts_and_ends(segment)
        xs["keep_f"], xs["keep_b"] = ~time_major(start, False), ~time_major(end, True)
    if mask is not None:
        xs["m_f"], xs["m_b"] = time_major(mask, False), time_major(mask, True)

    def direction(h, inputs, suffix, params):
        if segment is not None:
            h = jnp.where(inputs["keep" + suffix], h, 0.0)
        h_new = gru_cell(h, inputs["x" + suffix], *params)
        if mask is None:
            return h_new, h_new
        m = inputs["m" + suffix]
        return jnp.where(m, h_new, h), jnp.where(m, h_new, 0.0)

    def step(carry, inputs):
        h_f, out_f = direction(carry[0], inputs, "_f", forward)
        h_b, out_b = direction(carry[1], inputs, "_b", backward)
        return (h_f, h_b), (out_f, out_b)

    h0 = jnp.zeros((rows, three_h // 3), input_proj.dtype)
    _, (out_f, out_b) = jax.lax.scan(step, (h0, h0), xs)
    return jnp.swapaxes(jnp.concatenate([out_f, jnp.flip(out_b, 0)], axis=-1), 0, 1)


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
        h_new = gru_cell(h, xp, kernel_hh, bias_hh)
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

    def __call__(
        self, x: jax.Array, mask: jax.Array, *, segment: jax.Array | None = None
    ) -> jax.Array:
        """x `[batch, time, in]`, mask bool `[batch, time]` -> `[batch, time, 2H]`, zero at padding.

        segment: optional int `[batch, time]` sequence ids for rows packed with several sequences
        end to end (see `bigru_scan`).
        """
        f, b = self.forward, self.backward
        kernel_ih = jnp.concatenate([f.kernel_ih[...], b.kernel_ih[...]], axis=1)
        bias_ih = jnp.concatenate([f.bias_ih[...], b.bias_ih[...]])
        out = bigru_scan(
            x @ kernel_ih + bias_ih,
            (f.kernel_hh[...], f.bias_hh[...]),
            (b.kernel_hh[...], b.bias_hh[...]),
            mask=mask,
            segment=segment,
        )
        return out
