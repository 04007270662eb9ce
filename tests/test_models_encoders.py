"""biGRU against a step-by-step PyTorch-GRU reference, GRU init, and the conv encoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.models import BiGRU, ConvEncoder, IdentityEncoder


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _torch_gru_direction(x, w_ih, w_hh, b_ih, b_hh):
    """x [T, in]; PyTorch layout w_ih [3H, in], w_hh [3H, H]; returns [T, H]."""
    hidden = w_hh.shape[1]
    h = np.zeros(hidden)
    outs = []
    for x_t in x:
        gi = w_ih @ x_t + b_ih
        gh = w_hh @ h + b_hh
        r = _sigmoid(gi[:hidden] + gh[:hidden])
        z = _sigmoid(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
        n = np.tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.array(outs).reshape(len(x), hidden)


def _reference_bigru(x, lengths, params):
    batch, time, _ = x.shape
    hidden = params[0][1].shape[1]
    out = np.zeros((batch, time, 2 * hidden))
    for b, length in enumerate(lengths):
        if length == 0:
            continue
        seq = x[b, :length]
        out[b, :length, :hidden] = _torch_gru_direction(seq, *params[0])
        out[b, :length, hidden:] = _torch_gru_direction(seq[::-1], *params[1])[::-1]
    return out


def _randomize_biases(gru, rng, dtype):
    params = []
    for direction in (gru.forward, gru.backward):
        for name in ("bias_ih", "bias_hh"):
            var = getattr(direction, name)
            var[...] = jnp.asarray(rng.normal(size=var[...].shape), dtype)
        params.append(
            tuple(
                np.asarray(a, np.float64)
                for a in (
                    direction.kernel_ih[...].T,
                    direction.kernel_hh[...].T,
                    direction.bias_ih[...],
                    direction.bias_hh[...],
                )
            )
        )
    return params


@pytest.mark.parametrize("x64", [False, True])
def test_bigru_matches_pytorch_equations_with_variable_lengths(x64):
    rng = np.random.default_rng(0)
    batch, time, d_in, hidden = 5, 7, 3, 4
    lengths = np.array([7, 3, 0, 1, 5])
    mask = np.arange(time)[None, :] < lengths[:, None]
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        gru = BiGRU(d_in, hidden, rngs=nnx.Rngs(1), param_dtype=dtype)
        params = _randomize_biases(gru, rng, dtype)  # non-zero b_hn exercises r * (W_hn h + b_hn)
        x = rng.normal(size=(batch, time, d_in))
        # Junk at padded positions must not leak into valid ones.
        x_junk = np.where(mask[..., None], x, 100.0 * rng.normal(size=x.shape))
        got = np.asarray(nnx.jit(lambda g, x, m: g(x, m))(gru, jnp.asarray(x_junk, dtype), mask))
        backward_alone = np.asarray(gru.backward(jnp.asarray(x_junk, dtype), mask, reverse=True))
    assert got.dtype == (np.float64 if x64 else np.float32)
    want = _reference_bigru(x, lengths, params)
    np.testing.assert_allclose(got, want, rtol=1e-11 if x64 else 2e-5, atol=1e-12 if x64 else 2e-6)
    assert np.all(got[~mask] == 0.0)
    np.testing.assert_allclose(backward_alone, got[..., hidden:], rtol=1e-6, atol=1e-7)


def test_gru_init_follows_allennlp_config():
    gru = BiGRU(6, 50, rngs=nnx.Rngs(0))
    for direction in (gru.forward, gru.backward):
        bias_hh = np.asarray(direction.bias_hh[...])
        assert bias_hh.shape == (150,)
        ones = np.flatnonzero(bias_hh == 1.0)
        np.testing.assert_array_equal(
            ones, np.arange(37, 74)
        )  # lstm_hidden_bias (paper_notes.md Q11)
        assert np.all(bias_hh[(bias_hh != 1.0)] == 0.0)
        assert np.all(np.asarray(direction.bias_ih[...]) == 0.0)
        # orthogonal weight_hh [3H, H] = kernel_hh.T has orthonormal columns
        w_hh = np.asarray(direction.kernel_hh[...]).T
        np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(50), atol=1e-5)
        # xavier_uniform bound over weight_ih [3H, in]
        w_ih = np.asarray(direction.kernel_ih[...])
        assert np.abs(w_ih).max() <= np.sqrt(6 / (6 + 150))
    zeros = BiGRU(6, 5, rngs=nnx.Rngs(0), hidden_bias="zeros")
    assert np.all(np.asarray(zeros.forward.bias_hh[...]) == 0.0)


def _reference_conv(x, mask, convs):
    x = x * mask[..., None]
    outs = []
    for kernel, bias in convs:
        width = kernel.shape[0]
        pad = (width - 1) // 2
        xp = np.pad(x, ((0, 0), (pad, pad), (0, 0)))
        out = np.zeros(x.shape[:2] + (kernel.shape[2],))
        for t in range(x.shape[1]):
            out[:, t] = np.einsum("bwi,wio->bo", xp[:, t : t + width], kernel) + bias
        outs.append(np.maximum(out, 0.0))
    return np.concatenate(outs, -1) * mask[..., None]


def test_conv_encoder_matches_reference_and_applies_dropout_only_in_training():
    rng = np.random.default_rng(3)
    enc = ConvEncoder(3, 4, (3, 5), 0.5, rngs=nnx.Rngs(2))
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    mask = np.arange(6)[None] < np.array([6, 2, 4])[:, None]
    convs = [(np.asarray(c.kernel[...]), np.asarray(c.bias[...])) for c in enc.convs]
    enc.eval()
    got = np.asarray(enc(jnp.asarray(x), jnp.asarray(mask)))
    np.testing.assert_allclose(got, _reference_conv(x, mask, convs), rtol=1e-5, atol=1e-5)
    enc.train()
    trained = np.asarray(enc(jnp.asarray(x), jnp.asarray(mask)))
    assert not np.allclose(trained, got)
    assert np.all(trained[~mask] == 0.0)


def test_identity_encoder_zeroes_padding():
    x = jnp.ones((2, 3, 4))
    mask = jnp.array([[True, True, False], [False, False, False]])
    out = np.asarray(IdentityEncoder()(x, mask))
    np.testing.assert_array_equal(out, np.broadcast_to(np.asarray(mask)[..., None], (2, 3, 4)))
