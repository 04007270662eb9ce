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

`bigru_scan` is a `fori_loop` that stops at the last position any row uses (the HAN sentence
level: the batch's most sentences, not the 64 slots) and projects the inputs step by step, so
padding after it costs nothing; a loop of dynamic length cannot be differentiated by JAX, so its
gradient is written out (`_bigru_grad`, checked against autodiff of the plain scans in
tests/test_models_packed.py). Measured in CPU time on `yahoo_answers_10k` batches against the
autodiffed `lax.scan` it replaced: word level (80 packed rows) 60 -> 43 ms, sentence level
(64 documents, at most 8 sentences) 33 -> 14 ms, a FLAN-rnn batch (64 x 256 tokens, 180 used)
207 -> 173 ms per forward and backward pass; the weight gradients as 2-d matmuls over the
flattened steps (`_used_step_products`) took the HAN-rnn training step from 110 to 100 ms, and
taking them only over the steps used (the sentence level's 8-16 of 64 slots) ~5 ms more.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from attn_interp.models.initializers import lstm_hidden_bias


def gru_cell(h: jax.Array, xp: jax.Array, kernel_hh: jax.Array, bias_hh: jax.Array) -> jax.Array:
    """One GRU step: state h `[rows, H]`, input projection xp `[rows, 3H]` -> new state `[rows, H]`."""
    return _cell_with_gates(h, xp, kernel_hh, bias_hh)[0]


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
    proj: tuple[jax.Array, jax.Array] | tuple[()] = (),
) -> jax.Array:
    """Both GRU directions in one loop; step t advances the forward state at t and the backward
    state at n - 1 - t, so one loop does the work of two.

    input_proj: `[rows, time, 6H]` (forward then backward x @ kernel_ih + bias_ih); forward /
    backward: (kernel_hh `[H, 3H]`, bias_hh `[3H]`).
      mask: bool `[rows, time]`; masked steps carry the state unchanged and output zero.
      segment: int `[rows, time]`, several sequences per row end to end; the state restarts from
        zero where the id changes (the backward direction: where it changes next).
      proj: optional (kernel_ih `[in, 6H]`, bias_ih `[6H]`); input_proj is then the inputs
        `[rows, time, in]`, projected inside the loop, step by step (see `BiGRU`).
    Returns `[rows, time, 2H]` = [forward; backward].

    The loop runs only to n = one past the last position unmasked in any row (positions after it
    output zero and leave every state at zero, so skipping them changes nothing), which a `scan`
    over the padded `time` could not; its gradient is therefore hand-written (`_bigru_grad`).
    """
    x = jnp.swapaxes(input_proj, 0, 1)
    masks = {}
    if segment is not None:
        start, end = segment_starts_and_ends(segment)
        masks["keep_f"], masks["keep_b"] = ~_time_major(start), ~_time_major(end)
    if mask is not None:
        masks["m"] = _time_major(mask)
    out_f, out_b = _bigru(x, masks, (*forward, *backward), proj)
    return jnp.swapaxes(jnp.concatenate([out_f, out_b], axis=-1), 0, 1)


def _time_major(a: jax.Array) -> jax.Array:
    """bool `[rows, time]` -> `[time, rows, 1]`."""
    return jnp.swapaxes(a, 0, 1)[..., None]


def _used_length(x: jax.Array, masks: dict) -> jax.Array:
    """One past the last time step unmasked in any row (int32 scalar; `time` without a mask)."""
    time = x.shape[0]
    if "m" not in masks:
        return jnp.int32(time)
    used = jnp.any(masks["m"][..., 0], axis=1)
    return jnp.where(jnp.any(used), time - jnp.argmax(used[::-1]), 0).astype(jnp.int32)


def _at(a: jax.Array, t: jax.Array, lo: int = 0, width: int | None = None) -> jax.Array:
    """a[t, :, lo : lo + width] of a time-major `[time, rows, d]` array."""
    width = a.shape[-1] - lo if width is None else width
    return jax.lax.dynamic_slice(a, _index(t, lo), (1, a.shape[1], width))[0]


def _put(a: jax.Array, value: jax.Array, t: jax.Array, lo: int = 0) -> jax.Array:
    """a with a[t, :, lo : lo + value.shape[-1]] = value."""
    return jax.lax.dynamic_update_slice(a, value[None], _index(t, lo))


def _index(t: jax.Array, lo: int) -> tuple[jax.Array, ...]:
    """Start indices (t, 0, lo), all of t's integer type (x64 mode makes Python ints int64)."""
    zero = jnp.zeros_like(t)
    return t, zero, zero + lo


def _cell_with_gates(h_in, x, kernel_hh, bias_hh):
    """`gru_cell` that also returns (r, z, n, W_hn h + b_hn), each `[rows, H]`."""
    hp = h_in @ kernel_hh + bias_hh
    x_r, x_z, x_n = jnp.split(x, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h_in, (r, z, n, h_n)


def _bigru_loop(x, masks, params, proj, keep_residuals: bool):
    """The loop of `bigru_scan` on time-major x `[time, rows, d]` and masks (keep_f / keep_b /
    m bool `[time, rows, 1]`). x is the input projection (d = 6H) when `proj` is empty, else the
    inputs, projected step by step with proj = (kernel_ih `[in, 6H]`, bias_ih `[6H]`). Returns
    (out_f, out_b) `[time, rows, H]` by position and, if asked, residuals (h_in, r, z, n, h_n)
    `[time, rows, 5H]` per direction."""
    kf, bf, kb, bb = params
    time, rows, _ = x.shape
    hidden = kf.shape[0]
    n_used = _used_length(x, masks)

    def direction(h, t, suffix, half, kernel_hh, bias_hh):
        if "keep" + suffix in masks:
            h = jnp.where(_at(masks["keep" + suffix], t), h, 0.0)
        if proj:
            xp = _at(x, t) @ _half(proj[0], half) + _half(proj[1], half)
        else:
            xp = _at(x, t, half * 3 * hidden, 3 * hidden)
        h_new, gates = _cell_with_gates(h, xp, kernel_hh, bias_hh)
        res = jnp.concatenate([h, *gates], axis=-1) if keep_residuals else None
        if "m" not in masks:
            return h_new, h_new, res
        m = _at(masks["m"], t)
        return jnp.where(m, h_new, h), jnp.where(m, h_new, 0.0), res

    def body(t, carry):
        h_f, h_b, outs, residuals = carry
        p = n_used - 1 - t
        h_f, o_f, r_f = direction(h_f, t, "_f", 0, kf, bf)
        h_b, o_b, r_b = direction(h_b, p, "_b", 1, kb, bb)
        outs = (_put(outs[0], o_f, t), _put(outs[1], o_b, p))
        if keep_residuals:
            residuals = (_put(residuals[0], r_f, t), _put(residuals[1], r_b, p))
        return h_f, h_b, outs, residuals

    h0 = jnp.zeros((rows, hidden), x.dtype)
    outs = (jnp.zeros((time, rows, hidden), x.dtype),) * 2
    residuals = (jnp.zeros((time, rows, 5 * hidden), x.dtype),) * 2 if keep_residuals else ()
    _, _, outs, residuals = jax.lax.fori_loop(0, n_used, body, (h0, h0, outs, residuals))
    return outs, residuals


def _half(a: jax.Array, half: int) -> jax.Array:
    """The forward (0) or backward (1) half of a `[..., 6H]` projection parameter."""
    width = a.shape[-1] // 2
    return a[..., half * width : (half + 1) * width]


@jax.custom_vjp
def _bigru(x, masks, params, proj):
    return _bigru_loop(x, masks, params, proj, keep_residuals=False)[0]


def _bigru_forward(x, masks, params, proj):
    outs, residuals = _bigru_loop(x, masks, params, proj, keep_residuals=True)
    return outs, (x, masks, params, proj, residuals)


def _direction_grad(d_out, dh, res, m, keep, kernel_hh):
    """Cotangents of one direction's step from those of its output and next state: (dh of the
    previous state, dx `[rows, 3H]`, d(h @ kernel_hh + bias_hh) `[rows, 3H]`)."""
    h_in, r, z, n, h_n = jnp.split(res, 5, axis=-1)
    if m is None:
        g_new, g_pass = d_out + dh, 0.0
    else:
        g_new, g_pass = jnp.where(m, d_out + dh, 0.0), jnp.where(m, 0.0, dh)
    dn_pre = g_new * (1.0 - z) * (1.0 - n * n)
    dz_pre = g_new * (h_in - n) * z * (1.0 - z)
    dr_pre = dn_pre * h_n * r * (1.0 - r)
    dx = jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1)
    dhp = jnp.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1)
    dh_in = g_new * z + g_pass + dhp @ kernel_hh.T
    return (dh_in if keep is None else jnp.where(keep, dh_in, 0.0)), dx, dhp


def _bigru_grad(saved, d_outs):
    """The forward loop in reverse, applying `_direction_grad` to both directions; the weight
    gradients (and with `proj` the inputs') come after it (`_used_step_products`)."""
    x, masks, (kf, bf, kb, bb), proj, (res_f, res_b) = saved
    time, rows, _ = x.shape
    hidden = kf.shape[0]
    n_used = _used_length(x, masks)

    def mask_at(name, t):
        return _at(masks[name], t) if name in masks else None

    def direction(dh, t, suffix, res, kernel_hh, d_out):
        keep = mask_at("keep" + suffix, t)
        return _direction_grad(_at(d_out, t), dh, _at(res, t), mask_at("m", t), keep, kernel_hh)

    def body(i, carry):
        dh_f, dh_b, dxp, dhp_f, dhp_b = carry
        t, p = n_used - 1 - i, i
        dh_f, dxp_f, g_f = direction(dh_f, t, "_f", res_f, kf, d_outs[0])
        dh_b, dxp_b, g_b = direction(dh_b, p, "_b", res_b, kb, d_outs[1])
        dxp = _put(_put(dxp, dxp_f, t), dxp_b, p, 3 * hidden)
        return dh_f, dh_b, dxp, _put(dhp_f, g_f, t), _put(dhp_b, g_b, p)

    zeros = jnp.zeros((time, rows, 3 * hidden), x.dtype)
    h0 = jnp.zeros((rows, hidden), x.dtype)
    init = (h0, h0, jnp.zeros((time, rows, 6 * hidden), x.dtype), zeros, zeros)
    _, _, dxp, dhp_f, dhp_b = jax.lax.fori_loop(0, n_used, body, init)

    pairs = [(res_f[..., :hidden], dhp_f), (res_b[..., :hidden], dhp_b)]  # the state h
    if proj:
        pairs.append((x, dxp))
    products, sums, dx = _used_step_products(n_used, pairs, proj[0] if proj else None)
    d_masks = {k: None for k in masks}
    d_params = (products[0], sums[0], products[1], sums[1])
    if not proj:
        return dxp, d_masks, d_params, ()
    return dx, d_masks, d_params, (products[2], sums[2])


def _chunk(time: int) -> int:
    """Steps per matmul in `_used_step_products`: the largest of 16, 8, ..., 1 dividing time."""
    return next(c for c in (16, 8, 4, 2, 1) if time % c == 0)


def _used_step_products(n_used, pairs, kernel_ih):
    """Sums over the first n_used steps (all later steps are zero) of a^T b and of b, for
    pairs (a `[time, rows, p]`, b `[time, rows, q]`): ([p, q] each, [q] each); and with
    kernel_ih `[in, q]` the input gradient b @ kernel_ih^T `[time, rows, in]` of the last pair.

    The products are 2-d matmuls over flattened steps (XLA transposed the inputs of a
    `[time, rows]` einsum first: CPU 7.0 vs 4.4 ms for the word level's `[5120, 200] x
    [5120, 300]`): over all steps when most are used (packed word rows), else over chunks of
    `_chunk(time)` steps up to n_used only (the HAN sentence level uses 8-16 of its 64 slots,
    where matmuls over all of them took 11 of the biGRU's 15 ms).
    """
    time = pairs[0][1].shape[0]
    chunked = functools.partial(_chunked_step_products, n_used)
    return jax.lax.cond(2 * n_used > time, _step_products, chunked, pairs, kernel_ih)


def _step_products(pairs, kernel_ih):
    """`_used_step_products` over all steps."""
    products, sums = [], []
    for a, b in pairs:
        a2 = a.reshape(-1, a.shape[-1])
        b2 = b.reshape(-1, b.shape[-1])
        products.append(jax.lax.dot_general(a2, b2, (((0,), (0,)), ((), ()))))
        sums.append(jnp.sum(b2, axis=0))
    dx = None if kernel_ih is None else pairs[-1][1] @ kernel_ih.T
    return products, sums, dx


def _chunked_step_products(n_used, pairs, kernel_ih):
    """`_used_step_products` over the chunks of steps up to n_used."""
    time, rows = pairs[0][1].shape[:2]
    c = _chunk(time)

    def body(i, carry):
        products, sums, dx = carry
        piece = [tuple(jax.lax.dynamic_slice_in_dim(a, i * c, c) for a in ab) for ab in pairs]
        p, s, d = _step_products(piece, kernel_ih)
        if kernel_ih is not None:
            dx = jax.lax.dynamic_update_slice_in_dim(dx, d, i * c, 0)
        products = [x + y for x, y in zip(products, p, strict=True)]
        return products, [x + y for x, y in zip(sums, s, strict=True)], dx

    dtype = pairs[0][1].dtype
    products = [jnp.zeros((a.shape[-1], b.shape[-1]), dtype) for a, b in pairs]
    sums = [jnp.zeros((b.shape[-1],), dtype) for _, b in pairs]
    dx = None
    if kernel_ih is not None:
        dx = jnp.zeros((time, rows, kernel_ih.shape[0]), dtype)
    n_chunks = (n_used + c - 1) // c
    return jax.lax.fori_loop(0, n_chunks, body, (products, sums, dx))


_bigru.defvjp(_bigru_forward, _bigru_grad)


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
        return bigru_scan(
            x,
            (f.kernel_hh[...], f.bias_hh[...]),
            (b.kernel_hh[...], b.bias_hh[...]),
            mask=mask,
            segment=segment,
            proj=(kernel_ih, bias_ih),
        )
