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

import jax
import orbax.checkpoint as ocp
from flax import nnx

from attn_interp.run_dirs import CHECKPOINT_DIR

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


def _shape_differences(target: dict, mgr: ocp.CheckpointManager, step: int) -> list[str]:
    """Arrays of `target` missing from, extra to, or shaped unlike the checkpoint at `step`, by its
    metadata; empty when they fit or when the metadata cannot be read (restore then reports it)."""
    try:
        saved = mgr.item_metadata(step)["state"]
    except Exception:  # unreadable metadata: left to restore's own error
        return []
    if saved is None:
        return []

    def shapes(tree) -> dict[str, tuple | None]:
        out = {}
        for path, x in jax.tree_util.tree_leaves_with_path(tree):
            name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
            dtype = getattr(x, "dtype", None)
            is_key = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
            out[name] = None if is_key else getattr(x, "shape", None)  # keys are saved as data
        return out

    want, have = shapes(target), shapes(saved)
    diffs = []
    for key in sorted(want.keys() | have.keys()):
        if key not in have:
            diffs.append(f"{key} is not in the checkpoint")
        elif key not in want:
            diffs.append(f"{key} is not in the model")
        elif None not in (want[key], have[key]) and tuple(want[key]) != tuple(have[key]):
            diffs.append(f"{key}: checkpoint {tuple(have[key])}, model {tuple(want[key])}")
    return diffs


class RunCheckpoints:
    """The two checkpoint managers (latest, best) of one run folder.

    Args:
      workdir: run folder; made absolute (orbax requires absolute paths).
    """

    def __init__(self, workdir: str):
        self.root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._managers = {
            name: ocp.CheckpointManager(
                os.path.join(self.root, name),
                options=options,
                item_handlers={  # named, so that item_metadata can read the array shapes
                    "state": ocp.StandardCheckpointHandler(),
                    "meta": ocp.JsonCheckpointHandler(),
                },
            )
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
        where = os.path.join(self.root, which, str(step))
        diffs = _shape_differences(target, mgr, step)
        if diffs:  # checked before restoring: orbax would fail inside its asynchronous reads
            raise CheckpointError(
                f"Checkpoint {where} does not fit the model built from this run's config "
                f"({'; '.join(diffs[:4])}). It was probably written by another model or config: "
                "use the config.json saved with that run, or train into a fresh --workdir."
            )
        try:
            restored = mgr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"Checkpoint {where} does not fit the model "
                f"built from this run's config ({type(err).__name__}: {str(err)[:300]}). It was "
                "probably written by another model or config: use the config.json saved with that "
                "run, or train into a fresh --workdir."
            ) from err
        except Exception as err:  # orbax raises assorted errors for truncated/corrupt files
            raise CheckpointError(
                f"Could not read checkpoint {where} "
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
