"""Sequence encoders feeding an attention layer: biGRU, parallel convolutions, identity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attn_interp.models.config import ModelConfig
from attn_interp.models.dropout import Dropout
from attn_interp.models.gru import BiGRU
from attn_interp.models.initializers import torch_default_uniform


class ConvEncoder(nnx.Module):
    """Parallel 1-D convolutions (one per width, `hidden` filters each), "same" zero padding, ReLU.

    The input is masked, dropped out (training only), convolved, and the output masked again
    (paper_notes.md §1.5). PyTorch default init. Rows packed with several sequences need
    `conv_gap(widths)` masked positions between sequences so that no window reaches a neighbour.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        widths: tuple[int, ...],
        dropout: float,
        *,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        self.dropout = Dropout(dropout, rngs=rngs)
        self.convs = nnx.List(
            [
                nnx.Conv(
                    in_features,
                    hidden,
                    kernel_size=(w,),
                    padding=[((w - 1) // 2, (w - 1) // 2)],
                    kernel_init=torch_default_uniform(in_features * w),
                    bias_init=torch_default_uniform(in_features * w),
                    param_dtype=param_dtype,
                    rngs=rngs,
                )
                for w in widths
            ]
        )

    def __call__(
        self, x: jax.Array, mask: jax.Array, *, segment: jax.Array | None = None
    ) -> jax.Array:
        """x `[batch, time, in]`, mask bool `[batch, time]` -> `[batch, time, len(widths) * hidden]`.

        segment: unused (packed rows are separated by masked gaps instead).
        """
        del segment
        m = mask[..., None].astype(x.dtype)
        x = self.dropout(x * m)
        out = jnp.concatenate([jax.nn.relu(conv(x)) for conv in self.convs], axis=-1)
        return out * m


class IdentityEncoder(nnx.Module):
    """No encoder: returns the inputs with padding positions zeroed."""

    def __call__(
        self, x: jax.Array, mask: jax.Array, *, segment: jax.Array | None = None
    ) -> jax.Array:
        """x `[batch, time, in]`, mask bool `[batch, time]` -> `[batch, time, in]`."""
        del segment
        return x * mask[..., None].astype(x.dtype)


def packing_gap(cfg: ModelConfig) -> int:
    """Masked positions needed between sequences packed into one row for `cfg`'s encoder: half
    the widest convolution window for conv encoders, none for the biGRU (it restarts its state)
    and the identity."""
    return max(cfg.conv_widths) // 2 if cfg.encoder == "conv" else 0


def make_encoder(in_features: int, cfg: ModelConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    """Builds the encoder named by `cfg.arch` for `in_features`-d inputs."""
    if cfg.encoder == "rnn":
        return BiGRU(
            in_features,
            cfg.hidden,
            rngs=rngs,
            hidden_bias=cfg.gru_hidden_bias,
            param_dtype=cfg.param_dtype,
        )
    if cfg.encoder == "conv":
        return ConvEncoder(
            in_features,
            cfg.hidden,
            cfg.conv_widths,
            cfg.conv_dropout,
            rngs=rngs,
            param_dtype=cfg.param_dtype,
        )
    return IdentityEncoder()
