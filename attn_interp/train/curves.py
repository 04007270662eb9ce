"""Per-epoch metrics files and the training-curve figure of a run folder."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from attn_interp.io_utils import atomic_write, atomic_write_text
from attn_interp.run_dirs import CURVES_FILE as CURVES_FILE  # named here for train.loop
from attn_interp.run_dirs import METRICS_FILE


def write_metrics(workdir: str, history: Sequence[dict[str, Any]]) -> str:
    """Rewrites `WORKDIR/metrics.jsonl` with one JSON line per epoch record; returns its path.

    The whole file is rewritten from the checkpointed history, so a resumed run never duplicates
    or loses lines.
    """
    path = os.path.join(workdir, METRICS_FILE)
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
    return path


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Reads `WORKDIR/metrics.jsonl` back into a list of epoch records."""
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(history: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Saves loss, accuracy and learning rate per epoch (train and validation) as a PNG; returns path."""
    from matplotlib.figure import Figure  # a bare Figure: the caller's backend is left alone

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for key, label in (("train_loss", "train"), ("validation_loss", "validation")):
        axes[0].plot(epochs, [r[key] for r in history], marker="o", label=label)
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, label in (("train_accuracy", "train"), ("validation_accuracy", "validation")):
        axes[1].plot(epochs, [r[key] for r in history], marker="o", label=label)
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    axes[2].plot(epochs, [r["learning_rate"] for r in history], marker="o", color="tab:gray")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    return path
