"""Training of the attention classifiers: configs, loop, checkpoints, curves and run loading."""

from attn_interp.train.checkpoint import CheckpointError, RunCheckpoints
from attn_interp.train.config import (
    Dropouts,
    Preset,
    TrainConfig,
    family_of,
    paper_preset,
    preset_for,
)
from attn_interp.train.loop import FitResult, evaluate, fit, plateau_decision, predict
from attn_interp.train.optim import get_learning_rate, make_optimizer, make_tx, set_learning_rate

__all__ = [
    "CheckpointError",
    "Dropouts",
    "FitResult",
    "Preset",
    "RunCheckpoints",
    "TrainConfig",
    "evaluate",
    "family_of",
    "fit",
    "get_learning_rate",
    "make_optimizer",
    "make_tx",
    "paper_preset",
    "preset_for",
    "plateau_decision",
    "predict",
    "set_learning_rate",
]
