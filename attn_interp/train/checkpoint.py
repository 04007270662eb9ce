"""Orbax checkpoints of a training run: the latest state for resuming, the best model for use.

Layout under `WORKDIR/checkpoints/`:
  latest/<step>/{state, meta}: model state (parameters and dropout RNG streams), optimizer state
    (Adam moments, step count, current learning rate) and JSON metadata (epoch, position in the
    epoch's batch order, schedule bookkeeping, history, configs). Only the newest step is kept.
  best/<step>/{state, meta}: the model state with the best validation accuracy so far.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

LATEST = "latest"
BEST = "best"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model it is restored into."""


def _pure_state(node: nnx.Module | nnx.Optimizer) -> dict:
    return nnx.to_pure_dict(nnx.state(node))


def _load_pure_state(node: nnx.Module | nnx.Optimizer, pure: dict) -> None:
    state = nnx.state(node)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(node, state)


class RunCheckpoints:
    """The two checkpoint managers (latest, best) of one run folder.

    Args:
      workdir: run folder; made absolute (orbax requires absolute paths).
    """

    def __init__(self, workdir: str):
        self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._managers = {
            name: ocp.CheckpointManager(os.path.join(self.root, name), options=options)
            for name in (LATEST, BEST)
        }

    def latest_step(self, which: str = LATEST) -> int | None:
        """Step of the newest checkpoint of `which` ("latest" or "best"), or None if there is none."""
        return self._manager(which).latest_step()

    def _manager(self, which: str) -> ocp.CheckpointManager:
        if which not in self._managers:
            raise ValueError(f"which={which!r}: use {LATEST!r} or {BEST!r}.")
        return self._managers[which]

    def save(
        self,
        which: str,
        step: int,
        model: nnx.Module,
        meta: dict[str, Any],
        opt: nnx.Optimizer | None = None,
    ) -> None:
        """Saves model (and optimizer) state plus JSON `meta` at `step`; waits until it is on disk.

        An existing checkpoint at the same step (left by an interrupted run) is replaced.
        """
        mgr = self._manager(which)
        if step in mgr.all_steps():
            mgr.delete(step)
        state = {"model": _pure_state(model)}
        if opt is not None:
            state["opt"] = _pure_state(opt)
        mgr.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))
            ),
        )
        mgr.wait_until_finished()

    def restore(
        self, which: str, model: nnx.Module, opt: nnx.Optimizer | None = None
    ) -> dict[str, Any]:
        """Restores the newest `which` checkpoint into `model` (and `opt`) in place; returns meta.

        Raises:
          CheckpointError: no checkpoint, an unreadable one, or one whose arrays do not fit `model`.
        """
        mgr = self._manager(which)
        step = mgr.latest_step()
        if step is None:
            raise CheckpointError(
                f"No {which!r} checkpoint under {self.root}. Train first (python -m "
                "experiments.train --workdir=...) or point to the run folder that holds one."
            )
        target = {"model": _pure_state(model)}
        if opt is not None:
            target["opt"] = _pure_state(opt)
        try:
            restored = mgr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"Checkpoint {os.path.join(self.root, which, str(step))} does not fit the model "
                f"built from this run's config ({type(err).__name__}: {str(err)[:300]}). It was "
                "probably written by another model or config: use the config.json saved with that "
                "run, or train into a fresh --workdir."
            ) from err
        except Exception as err:  # orbax raises assorted errors for truncated/corrupt files
            raise CheckpointError(
                f"Could not read checkpoint {os.path.join(self.root, which, str(step))} "
                f"({type(err).__name__}: {str(err)[:300]}). It is missing files or corrupt: delete "
                "that step folder to fall back to an older one, or retrain into a fresh --workdir."
            ) from err
        _load_pure_state(model, restored["state"]["model"])
        if opt is not None:
            _load_pure_state(opt, restored["state"]["opt"])
        return dict(restored["meta"])

    def close(self) -> None:
        """Waits for pending saves and releases the managers."""
        for mgr in self._managers.values():
            mgr.wait_until_finished()
            mgr.close()
