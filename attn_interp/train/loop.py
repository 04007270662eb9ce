"""The training loop: jitted train/eval steps, reduce-on-plateau, early stopping, resumption.

`fit` works with any `nnx.Module` that maps tokens to logits `[batch, classes]` and whose dropout
is switched by `model.train()` / `model.eval()`; batches are `attn_interp.types.Batch`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from attn_interp import parallel
from attn_interp.train import curves
from attn_interp.train.checkpoint import BEST, LATEST, RunCheckpoints
from attn_interp.train.config import TrainConfig
from attn_interp.train.optim import get_learning_rate, make_optimizer, set_learning_rate
from attn_interp.types import Batch

if TYPE_CHECKING:  # the data package imports tensorflow_datasets; only place_batch needs it
    from attn_interp.data.batching import PackConfig

_REFRESH_EVERY = 10  # steps between progress-bar updates (each forces a device sync)
_COMPILE_EVENTS = (  # jax.monitoring durations of turning a new shape into an executable
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileTimer:
    """Seconds JAX spends tracing, lowering and compiling (or loading from its persistent
    cache) while the context is open, and how many XLA compilations that was.

        with CompileTimer() as timer:
            ...
        timer.seconds, timer.compilations
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.compilations = 0

    def _listen(self, event: str, duration: float, **_: Any) -> None:
        if event in _COMPILE_EVENTS:
            self.seconds += duration
            self.compilations += event == _COMPILE_EVENTS[-1]

    def __enter__(self) -> CompileTimer:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


def commit_to_device(node: nnx.Module | nnx.Optimizer) -> None:
    """Places every array of `node` on the default device explicitly ("committed").

    Arrays restored from a checkpoint are committed, and jit compiles anew for committed inputs:
    committing the state from the start lets a restored model reuse every compiled shape.
    """
    state = nnx.state(node)
    nnx.update(node, jax.device_put(state, jax.devices()[0]))


def _loss_terms(model: nnx.Module, tokens: jax.Array, labels: jax.Array, weights: jax.Array):
    """Mean cross-entropy over real rows, plus (summed loss, number correct) over real rows."""
    logits = model(tokens).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    loss_sum = jnp.sum(ce * weights)
    correct = jnp.sum((jnp.argmax(logits, axis=-1) == labels) * weights)
    return loss_sum / jnp.maximum(jnp.sum(weights), 1.0), (loss_sum, correct)


@nnx.jit
def train_step(
    model: nnx.Module, opt: nnx.Optimizer, tokens: jax.Array, labels: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One Adam step on the mean loss over rows with weight 1; returns (loss sum, correct count).

    tokens: `[batch, sentences, words]` or `[batch, tokens]`; labels int `[batch]`; weights float
    `[batch]`, 0 for filler rows (they contribute neither loss nor accuracy).
    """
    grad_fn = nnx.value_and_grad(_loss_terms, has_aux=True)
    (_, (loss_sum, correct)), grads = grad_fn(model, tokens, labels, weights)
    opt.update(model, grads)
    return loss_sum, correct


@nnx.jit
def eval_step(
    model: nnx.Module, tokens: jax.Array, labels: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Forward pass without update; returns (loss sum, correct count, predictions `[batch]`)."""
    logits = model(tokens).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    preds = jnp.argmax(logits, axis=-1)
    return jnp.sum(ce * weights), jnp.sum((preds == labels) * weights), preds


def row_weights(batch: Batch) -> np.ndarray:
    """float32 `[batch]`: 1 for real documents, 0 for filler rows (doc_index -1)."""
    return (np.asarray(batch.doc_index) >= 0).astype(np.float32)


def place_batch(
    batch: Batch, mesh: Mesh | None, pack: PackConfig | None = None
) -> tuple[Any, Any, Any, np.ndarray]:
    """(tokens, labels, weights, doc_index) ready for `train_step` / `eval_step`.

    Without a mesh the numpy arrays are returned as they are (the single-device path); with `pack`
    a HAN batch's tokens become `PackedSentences` (`pack_sentences`; the HAN models' fast layout)
    and labels, weights and doc_index get filler rows up to its documents axis. With a mesh,
    filler rows (weight 0, doc_index -1) pad the batch axis to a multiple of the "data" axis and
    tokens / labels / weights become global arrays sharded on that axis (padded layout: `pack`
    is not used, packed rows would mix documents of several devices); doc_index stays numpy
    `[padded batch]`.
    """
    w = row_weights(batch)
    if mesh is None:
        if pack is None or np.ndim(batch.tokens) != 3:
            return batch.tokens, batch.labels, w, np.asarray(batch.doc_index)
        from attn_interp.data.batching import pack_sentences

        packed = pack_sentences(batch.tokens, pack)
        rows = packed.sentence_mask.shape[0]
        labels, w, doc_index = parallel.pad_rows(
            rows, batch.labels, w, batch.doc_index, fill=(0, 0, -1)
        )
        return packed, labels, w, doc_index
    tokens, labels, w, doc_index = parallel.pad_rows(
        parallel.data_size(mesh),
        batch.tokens,
        batch.labels,
        w,
        batch.doc_index,
        fill=(0, 0, 0, -1),
    )
    tokens, labels, w = parallel.shard_rows(mesh, tokens, labels, w)
    return tokens, labels, w, doc_index


def evaluate(
    model: nnx.Module,
    batches: Sequence[Batch],
    *,
    mesh: Mesh | None = None,
    pack: PackConfig | None = None,
) -> dict[str, float]:
    """Loss and accuracy over all real documents of `batches`, dropout off.

    mesh: data-parallel mesh (`attn_interp.parallel.data_mesh`; default `parallel.current_mesh()`);
      the model's state must already be replicated on it (`fit` does that).
    pack: HAN batches go to the model as `PackedSentences` (see `place_batch`).
    Returns {"loss", "accuracy", "documents"}; leaves the model in eval mode.
    """
    mesh = parallel.resolve_mesh(mesh)
    model.eval()
    loss_sums, corrects, total = [], [], 0.0
    for batch in batches:
        tokens, labels, w, _ = place_batch(batch, mesh, pack)
        loss_sum, correct, _ = eval_step(model, tokens, labels, w)
        loss_sums.append(loss_sum)
        corrects.append(correct)
        total += float(row_weights(batch).sum())
    if total == 0:
        raise ValueError("evaluate() got no real documents (every row has doc_index -1).")
    loss = float(np.sum(jax.device_get(loss_sums), dtype=np.float64))
    correct = float(np.sum(jax.device_get(corrects), dtype=np.float64))
    return {"loss": loss / total, "accuracy": correct / total, "documents": int(total)}


def predict(
    model: nnx.Module,
    batches: Sequence[Batch],
    *,
    mesh: Mesh | None = None,
    pack: PackConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes of all real documents: (doc_index int64 `[n]`, prediction int32 `[n]`).

    mesh, pack: as in `evaluate`.
    """
    mesh = parallel.resolve_mesh(mesh)
    model.eval()
    idx, preds = [], []
    for batch in batches:
        tokens, labels, w, doc_index = place_batch(batch, mesh, pack)
        _, _, p = eval_step(model, tokens, labels, w)
        keep = doc_index >= 0
        idx.append(doc_index[keep])
        preds.append(parallel.gather(p)[keep].astype(np.int32))
    return np.concatenate(idx), np.concatenate(preds)


@dataclasses.dataclass(frozen=True)
class PlateauDecision:
    """What happens after an epoch: new counters, whether to halve the LR, whether to stop."""

    counters: dict[str, Any]
    halve_lr: bool
    stop: bool


def plateau_decision(
    counters: Mapping[str, Any], accuracy: float, cfg: TrainConfig
) -> PlateauDecision:
    """Reduce-on-plateau (mode max) and early stopping on validation accuracy.

    counters: "best_validation_accuracy", "epochs_without_improvement", "plateau_epochs".
    An epoch improves iff its accuracy is strictly above the best so far. Otherwise both counters
    grow; once "plateau_epochs" exceeds `cfg.lr_decay_patience` the LR is multiplied by
    `cfg.lr_decay_factor` (and that counter restarts), and once "epochs_without_improvement"
    reaches `cfg.patience` training stops.
    """
    best = counters["best_validation_accuracy"]
    bad = counters["epochs_without_improvement"]
    plateau = counters["plateau_epochs"]
    halve = False
    if accuracy > best:
        best, bad, plateau = accuracy, 0, 0
    else:
        bad, plateau = bad + 1, plateau + 1
        if plateau > cfg.lr_decay_patience:
            halve, plateau = True, 0
    new = {
        "best_validation_accuracy": best,
        "epochs_without_improvement": bad,
        "plateau_epochs": plateau,
    }
    return PlateauDecision(counters=new, halve_lr=halve, stop=bad >= cfg.patience)


@dataclasses.dataclass
class FitResult:
    """Outcome of `fit`: per-epoch history and the totals used for throughput figures."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_validation_accuracy: float
    epochs_run: int
    steps: int
    stopped_early: bool
    train_seconds: float
    step_seconds: float
    documents_seen: int
    tokens_seen: int
    resumed_from_step: int | None
    compile_seconds: float = 0.0


def _initial_progress(cfg: TrainConfig) -> dict[str, Any]:
    return {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "epoch_loss_sum": 0.0,
        "epoch_correct": 0.0,
        "epoch_documents": 0,
        "epoch_tokens": 0,
        "epoch_seconds": 0.0,
        "best_validation_accuracy": -1.0,
        "best_epoch": -1,
        "epochs_without_improvement": 0,
        "plateau_epochs": 0,
        "history": [],
        "train_seconds": 0.0,
        "step_seconds": 0.0,
        "documents_seen": 0,
        "tokens_seen": 0,
        "compile_seconds": 0.0,
        "finished": False,
        "stopped_early": False,
        "learning_rate": cfg.learning_rate,
    }


def fit(
    model: nnx.Module,
    cfg: TrainConfig,
    train_batches: Callable[[int], Sequence[Batch]],
    validation: Sequence[Batch],
    workdir: str,
    *,
    meta: Mapping[str, Any] | None = None,
    opt: nnx.Optimizer | None = None,
    mesh: Mesh | None = None,
    pack: PackConfig | None = None,
) -> FitResult:
    """Trains `model` in place, checkpointing to `workdir`, and leaves it at the *last* step.

    Resumes from `WORKDIR/checkpoints/latest` when it exists (also mid-epoch), so re-running the
    same call after an interruption reaches the same final state as an uninterrupted run. A
    finished run is not retrained. The best model by validation accuracy is saved under
    `checkpoints/best`; restore it with `RunCheckpoints(workdir).restore("best", model)`.

    Args:
      model: maps tokens to logits `[batch, classes]`; owns its dropout RNG streams.
      cfg: optimisation, schedule and checkpoint cadence.
      train_batches: `epoch -> batches`; must be deterministic in `epoch` (same list every call).
      validation: batches for model selection, early stopping and the LR schedule.
      workdir: run folder (metrics.jsonl, training_curves.png and checkpoints go here).
      meta: extra JSON-serialisable data stored with every checkpoint (e.g. configs).
      opt: optimizer to use; by default `make_optimizer(model, cfg)`.
      mesh: data parallelism over this mesh (`attn_interp.parallel.data_mesh()`; default
        `parallel.current_mesh()`, None = the single-device path, unchanged): parameters and
        optimizer state are replicated, every batch is padded with filler rows to a multiple of
        the device count and sharded on its batch axis. The model stays replicated afterwards.
      pack: HAN batches go to the model as `PackedSentences` (`pack_sentences`): the word encoder
        runs over real tokens only (same results; see `place_batch`).
    """
    mesh = parallel.resolve_mesh(mesh)
    opt = make_optimizer(model, cfg) if opt is None else opt
    if mesh is not None:
        parallel.replicate(model, mesh)
        parallel.replicate(opt, mesh)
    else:
        commit_to_device(model)
        commit_to_device(opt)
    ckpt = RunCheckpoints(workdir)
    extra = dict(meta or {})
    resumed_from = ckpt.latest_step(LATEST)
    if resumed_from is not None:
        progress = ckpt.restore(LATEST, model, opt)["progress"]
        if mesh is not None:
            parallel.replicate(model, mesh)
            parallel.replicate(opt, mesh)
    else:
        progress = _initial_progress(cfg)
    progress.setdefault("compile_seconds", 0.0)  # checkpoints written before it was recorded

    def save(which: str) -> None:
        ckpt.save(
            which,
            progress["step"],
            model,
            {**extra, "progress": progress},
            opt=opt if which == LATEST else None,
        )

    start = time.perf_counter()
    seconds_before = progress["train_seconds"]
    with CompileTimer() as timer:  # compile seconds per epoch (steps + validation)
        try:
            while not progress["finished"]:
                epoch = progress["epoch"]
                compile_before = timer.seconds
                batches = train_batches(epoch)
                if len(batches) == 0:
                    raise ValueError(f"train_batches({epoch}) returned no batches.")
                lr = get_learning_rate(opt)
                model.train()
                bar = tqdm(
                    total=len(batches),
                    initial=progress["batch_in_epoch"],
                    desc=f"epoch {epoch + 1}/{cfg.epochs}",
                    disable=not cfg.progress,
                    leave=False,
                    dynamic_ncols=True,
                )
                pending: list[tuple[jax.Array, jax.Array]] = []
                epoch_start = time.perf_counter()

                def flush(pending=pending, progress=progress) -> None:
                    if pending:
                        vals = np.asarray(jax.device_get(pending), dtype=np.float64)
                        progress["epoch_loss_sum"] += float(vals[:, 0].sum())
                        progress["epoch_correct"] += float(vals[:, 1].sum())
                        pending.clear()

                for i in range(progress["batch_in_epoch"], len(batches)):
                    batch = batches[i]
                    w = row_weights(batch)
                    t0 = time.perf_counter()
                    tokens, labels, weights, _ = place_batch(batch, mesh, pack)
                    pending.append(train_step(model, opt, tokens, labels, weights))
                    n_docs, n_tokens = int(w.sum()), int(np.count_nonzero(batch.tokens))
                    progress["step"] += 1
                    progress["batch_in_epoch"] = i + 1
                    progress["epoch_documents"] += n_docs
                    progress["epoch_tokens"] += n_tokens
                    progress["documents_seen"] += n_docs
                    progress["tokens_seen"] += n_tokens
                    bar.update(1)
                    last = i + 1 == len(batches)
                    periodic = cfg.save_every_steps and progress["step"] % cfg.save_every_steps == 0
                    if last or periodic or len(pending) >= _REFRESH_EVERY:
                        flush()
                        docs = max(progress["epoch_documents"], 1)
                        bar.set_postfix(
                            loss=f"{progress['epoch_loss_sum'] / docs:.4f}",
                            acc=f"{progress['epoch_correct'] / docs:.4f}",
                        )
                    progress["step_seconds"] += time.perf_counter() - t0
                    if periodic and not last:
                        progress["epoch_seconds"] += time.perf_counter() - epoch_start
                        progress["train_seconds"] = seconds_before + time.perf_counter() - start
                        epoch_start = time.perf_counter()
                        save(LATEST)
                bar.close()
                progress["epoch_seconds"] += time.perf_counter() - epoch_start

                val = evaluate(model, validation, mesh=mesh, pack=pack)
                model.train()
                improved = val["accuracy"] > progress["best_validation_accuracy"]
                if improved:
                    progress["best_epoch"] = epoch + 1
                docs = max(progress["epoch_documents"], 1)
                record = {
                    "epoch": epoch + 1,
                    "step": progress["step"],
                    "train_loss": progress["epoch_loss_sum"] / docs,
                    "train_accuracy": progress["epoch_correct"] / docs,
                    "validation_loss": val["loss"],
                    "validation_accuracy": val["accuracy"],
                    "learning_rate": lr,
                    "epoch_seconds": progress["epoch_seconds"],
                    "documents": progress["epoch_documents"],
                    "tokens": progress["epoch_tokens"],
                    "compile_seconds": timer.seconds - compile_before,
                    "best": improved,
                }
                progress["history"].append(record)
                decision = plateau_decision(progress, val["accuracy"], cfg)
                progress.update(decision.counters)
                if decision.halve_lr:
                    set_learning_rate(opt, lr * cfg.lr_decay_factor)
                progress["learning_rate"] = get_learning_rate(opt)
                progress["stopped_early"] = decision.stop and epoch + 1 < cfg.epochs
                progress["finished"] = decision.stop or epoch + 1 >= cfg.epochs
                progress.update(
                    epoch=epoch + 1,
                    batch_in_epoch=0,
                    epoch_loss_sum=0.0,
                    epoch_correct=0.0,
                    epoch_documents=0,
                    epoch_tokens=0,
                    epoch_seconds=0.0,
                    train_seconds=seconds_before + time.perf_counter() - start,
                    compile_seconds=progress["compile_seconds"] + record["compile_seconds"],
                )
                if improved:
                    save(BEST)
                save(LATEST)
                curves.write_metrics(workdir, progress["history"])
                curves.plot_curves(
                    progress["history"], f"{workdir}/{curves.CURVES_FILE}", extra.get("title", "")
                )
                if cfg.progress:
                    tqdm.write(
                        f"epoch {epoch + 1}: train loss {record['train_loss']:.4f} acc "
                        f"{record['train_accuracy']:.4f} | val loss {val['loss']:.4f} acc "
                        f"{val['accuracy']:.4f} | lr {lr:.2e}{' *best*' if improved else ''}"
                    )
        finally:
            ckpt.close()
    return FitResult(
        history=list(progress["history"]),
        best_epoch=progress["best_epoch"],
        best_validation_accuracy=progress["best_validation_accuracy"],
        epochs_run=progress["epoch"],
        steps=progress["step"],
        stopped_early=progress["stopped_early"],
        train_seconds=progress["train_seconds"],
        step_seconds=progress["step_seconds"],
        documents_seen=progress["documents_seen"],
        tokens_seen=progress["tokens_seen"],
        resumed_from_step=resumed_from,
        compile_seconds=progress["compile_seconds"],
    )
