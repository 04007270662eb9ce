"""Optimizer construction: gradient clipping + Adam with an injectable learning rate."""

from __future__ import annotations

import jax.numpy as jnp
import optax
from flax import nnx

from attn_interp.train.config import TrainConfig


def make_tx(cfg: TrainConfig) -> optax.GradientTransformation:
    """Clipping (per `cfg.clip`) followed by Adam; the learning rate is an injected hyper-parameter.

    The learning rate lives in the optimizer state (`state.hyperparams["learning_rate"]`), so the
    reduce-on-plateau schedule can change it between epochs and checkpoints carry it.
    """

    def chain(learning_rate):
        if cfg.clip == "norm":
            clip = optax.clip_by_global_norm(cfg.clip_threshold)
        elif cfg.clip == "value":
            clip = optax.clip(cfg.clip_threshold)
        else:
            clip = optax.identity()
        adam = optax.adam(learning_rate, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps)
        return optax.chain(clip, adam)

    return optax.inject_hyperparams(chain)(learning_rate=cfg.learning_rate)


def make_optimizer(model: nnx.Module, cfg: TrainConfig) -> nnx.Optimizer:
    """`nnx.Optimizer` over the model's `nnx.Param`s with `make_tx(cfg)`."""
    return nnx.Optimizer(model, make_tx(cfg), wrt=nnx.Param)


def get_learning_rate(opt: nnx.Optimizer) -> float:
    """Current learning rate stored in the optimizer state."""
    return float(opt.opt_state.hyperparams["learning_rate"][...])


def set_learning_rate(opt: nnx.Optimizer, value: float) -> None:
    """Overwrites the learning rate stored in the optimizer state (keeps its dtype)."""
    var = opt.opt_state.hyperparams["learning_rate"]
    var[...] = jnp.asarray(value, dtype=var[...].dtype)
