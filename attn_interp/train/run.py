"""A whole training run on a dataset (data -> vocabulary -> model -> fit -> test), and loading it.

The run folder's files are named and read by `attn_interp.run_dirs.RunDir`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import nnx

import attn_interp
from attn_interp.data.fingerprint import record_digest
from attn_interp.data.shapes import batch_config, bucket_batches
from attn_interp.io_utils import atomic_write_json, remove_stale_temp_files
from attn_interp.run_dirs import (
    CONFIG_FILE,
    DATA_SHA_KEY,
    VOCAB_FILE,
    RunDir,
    RunFolderError,
    stable_record,
)
from attn_interp.train import loop
from attn_interp.train.checkpoint import BEST, LATEST, CheckpointError, RunCheckpoints
from attn_interp.train.config import TrainConfig
from attn_interp.train.metrics import classification_metrics
from attn_interp.train.optim import make_optimizer
from attn_interp.train.serialize import config_from_json, config_to_json

RANDOM_EMBEDDINGS, WORD2VEC = "random", "word2vec"  # TrainConfig.embeddings (else: a file)


@dataclasses.dataclass
class TrainedRun:
    """A trained model restored from a run folder, with everything needed to use it.

    model: `AttentionClassifier` in eval mode (dropout off).
    step: the training step of the restored checkpoint.
    data_sha256: split name -> fingerprint of the documents the run was trained and tested on
      (empty for a run folder written before fingerprints were recorded).
    identity: `RunDir.identity()`: sha256 of the run's settings and data.
    """

    model: Any
    model_config: Any
    train_config: TrainConfig
    data_config: Any
    vocab: Any
    class_names: tuple[str, ...]
    workdir: str
    which: str
    meta: dict[str, Any]
    step: int
    data_sha256: dict[str, str]
    identity: str


def _vocab_words(vocab) -> list[str]:
    """Word of each id: position i holds the word of id i (padding and UNK included)."""
    return ["<pad>", *vocab.words, "<unk>"]


def _word2vec_config(train_cfg: TrainConfig, word2vec: Any, embed_dim: int) -> Any:
    """The word2vec settings of the run (None unless `train_cfg.embeddings` is "word2vec")."""
    if train_cfg.embeddings != WORD2VEC:
        return None
    from attn_interp.embeddings import Word2VecConfig

    return dataclasses.replace(word2vec or Word2VecConfig(), dim=embed_dim)


def _initial_embeddings(
    train_cfg: TrainConfig, word2vec, loaded, vocab, data_cfg, dim: int, corpus: str | None
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The initial `[vocab, dim]` embedding matrix of a fresh run (None: random init) and what to
    record about it in final.json."""
    if train_cfg.embeddings == RANDOM_EMBEDDINGS:
        return None, {}
    from attn_interp.data.fetch import resolve_cache_dir
    from attn_interp.embeddings import word2vec_matrix
    from attn_interp.models import load_word_vectors

    start = time.perf_counter()
    if train_cfg.embeddings != WORD2VEC:
        matrix = load_word_vectors(train_cfg.embeddings, _vocab_words(vocab), dim)
        return matrix, {"embeddings_seconds": time.perf_counter() - start}
    matrix, cached = word2vec_matrix(
        loaded, vocab, word2vec, resolve_cache_dir(data_cfg.cache_dir), extra_corpus=corpus
    )
    return matrix, {
        "embeddings_seconds": time.perf_counter() - start,
        "word2vec_vectors": cached.path,
        "word2vec_reused": cached.reused,
    }


def _run_record(model_cfg, train_cfg, data_cfg, class_names, extra) -> dict[str, Any]:
    return {
        "model": config_to_json(model_cfg),
        "train": config_to_json(train_cfg),
        "data": config_to_json(data_cfg),
        "class_names": list(class_names),
        **extra,
    }


def requested_run(
    data_cfg: Any,
    train_cfg: TrainConfig,
    loaded: Any,
    *,
    arch: str,
    model_overrides: Mapping[str, Any] | None = None,
    word2vec: Any = None,
    embeddings_corpus: str | None = None,
    min_count: int = 5,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """The config.json record a run of these settings on `loaded` (a `LoadedDataset`) writes.

    vocab_size: the vocabulary's size; None when it is not built yet (it follows from the data
      and `min_count`, so `RunDir.differences` then leaves it out of the comparison).
    """
    from attn_interp.models import ModelConfig

    model_cfg = ModelConfig(
        arch,
        vocab_size=vocab_size or 2,  # placeholder (the smallest valid), dropped below
        num_classes=loaded.num_classes,
        **dict(model_overrides or {}),
    )
    word2vec = _word2vec_config(train_cfg, word2vec, model_cfg.embed_dim)
    record = _run_record(
        model_cfg,
        train_cfg,
        data_cfg,
        loaded.class_names,
        {
            "dataset": loaded.name,
            "min_count": min_count,
            "word2vec": config_to_json(word2vec) if word2vec is not None else None,
            "embeddings_corpus": embeddings_corpus,
            DATA_SHA_KEY: {name: split.fingerprint() for name, split in loaded.splits.items()},
            "package_version": attn_interp.__version__,
        },
    )
    if vocab_size is None:
        del record["model"]["vocab_size"]
    return record


def train_and_evaluate(
    data_cfg: Any,
    train_cfg: TrainConfig,
    workdir: str,
    *,
    arch: str,
    model_overrides: Mapping[str, Any] | None = None,
    word2vec: Any = None,
    embeddings_corpus: str | None = None,
    min_count: int = 5,
    loaded: Any = None,
) -> dict[str, Any]:
    """Trains `arch` on `data_cfg`'s dataset into `workdir` (resuming if possible); tests the best.

    Args:
      data_cfg: `attn_interp.data.DataConfig`.
      train_cfg: optimisation / batching / checkpointing settings (see `paper_preset`).
      workdir: run folder (created); re-running with the same arguments resumes.
      arch: one of `attn_interp.models.ARCHITECTURES`.
      model_overrides: extra `ModelConfig` fields (dropouts, embed_dim, hidden, ...).
      word2vec: `attn_interp.embeddings.Word2VecConfig` used when `train_cfg.embeddings` is
        "word2vec" (default: the paper's settings); its dim is set to the model's embed_dim.
      embeddings_corpus: extra unlabeled text (one document per line) for word2vec.
      min_count: vocabulary threshold on train + validation token counts.
      loaded: the `LoadedDataset` of `data_cfg` if the caller has it already (else loaded here).

    Returns:
      The content of `WORKDIR/final.json`: test accuracy over all test documents
      (paper_notes.md Q8), validation accuracy of the selected model, epochs, timings and training throughput.
    """
    from attn_interp import data as data_lib
    from attn_interp.models import ModelConfig, make_model
    from attn_interp.models.encoders import packing_gap

    start = time.perf_counter()
    run_dir = RunDir(workdir)
    workdir = run_dir.path
    if loaded is None:
        loaded = data_lib.load_splits(data_cfg)
    data_lib.validate_for_training(loaded)  # before anything is written or trained
    request = dict(
        arch=arch,
        model_overrides=model_overrides,
        word2vec=word2vec,
        embeddings_corpus=embeddings_corpus,
        min_count=min_count,
    )
    # Checked before anything is written: a changed configuration or dataset is refused whole.
    run_dir.check_same(requested_run(data_cfg, train_cfg, loaded, **request))
    remove_stale_temp_files(workdir)  # partial writes of a killed earlier run
    vocab_path = run_dir.vocab_path
    if os.path.exists(vocab_path):
        vocab = data_lib.Vocabulary.load(vocab_path)
    else:
        vocab = data_lib.build_vocabulary(loaded, min_count=min_count)
        vocab.save(vocab_path)
    record = requested_run(data_cfg, train_cfg, loaded, vocab_size=len(vocab), **request)
    run_dir.check_same(record)
    atomic_write_json(run_dir.config_path, record)
    model_cfg = config_from_json(ModelConfig, record["model"])
    word2vec = _word2vec_config(train_cfg, word2vec, model_cfg.embed_dim)

    hier = model_cfg.hierarchical
    corpora = {
        name: data_lib.encode_corpus(loaded.splits[name], vocab, hierarchical=hier)
        for name in ("train", "validation", "test")
    }
    bcfg = batch_config(train_cfg)
    data_lib.validate_for_training(loaded, corpora, bcfg)
    # Documents over the training length caps (HAN presets): counted here, dropped by make_batches.
    dropped = data_lib.apply_training_caps(corpora["train"], bcfg)[1]
    if dropped:
        logging.info(
            "training caps drop %s of %d training documents", dropped, len(corpora["train"])
        )

    ratio = train_cfg.shape_ladder_ratio

    def train_batches(epoch: int):
        batches = data_lib.make_batches(
            corpora["train"], bcfg, hierarchical=hier, train=True, seed=train_cfg.seed, epoch=epoch
        )
        return bucket_batches(batches, ratio)

    def eval_batches(split: str):
        batches = data_lib.make_batches(corpora[split], bcfg, hierarchical=hier, train=False)
        return bucket_batches(batches, ratio)

    validation, test = eval_batches("validation"), eval_batches("test")
    # HAN: the word level runs on real sentences packed into rows (same results, far fewer cells).
    pack = (
        data_lib.pack_config_for(corpora["train"], bcfg.batch_size, gap=packing_gap(model_cfg))
        if hier
        else None
    )

    ckpt = RunCheckpoints(workdir)
    resume_step = ckpt.latest_step(LATEST)
    ckpt.close()
    fresh_run = resume_step is None
    if not fresh_run:
        logging.info("%s: resumed from step %d", workdir, resume_step)
    embeddings, embed_info = None, {}
    if fresh_run:
        embeddings, embed_info = _initial_embeddings(
            train_cfg, word2vec, loaded, vocab, data_cfg, model_cfg.embed_dim, embeddings_corpus
        )
    model = make_model(model_cfg, rngs=nnx.Rngs(train_cfg.seed), embeddings=embeddings)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    logging.info(
        "%s on %s: %d params, vocab %d, train/val/test docs %d/%d/%d",
        arch,
        loaded.name,
        n_params,
        len(vocab),
        len(corpora["train"]),
        len(corpora["validation"]),
        len(corpora["test"]),
    )
    result = loop.fit(
        model,
        train_cfg,
        train_batches,
        validation,
        workdir,
        meta={"run": record, "title": f"{arch} on {loaded.name}"},
        pack=pack,
    )
    ckpt = RunCheckpoints(workdir)
    try:
        ckpt.restore(BEST, model)
    finally:
        ckpt.close()
    val = loop.evaluate(model, validation, pack=pack)
    tst = loop.evaluate(model, test, pack=pack)
    doc_index, predicted = loop.predict(model, test, pack=pack)
    labels = loaded.splits["test"].labels[doc_index]
    per_class = classification_metrics(labels, predicted, loaded.num_classes)
    step_s = max(result.step_seconds, 1e-9)
    final = {
        "model": arch,
        "dataset": loaded.name,
        "test_accuracy": tst["accuracy"],
        "test_loss": tst["loss"],
        "test_documents": tst["documents"],
        "test_documents_without_tokens": len(corpora["test"].skipped_doc_index),
        "test_macro_f1": per_class.macro_f1,
        "test_per_class": [
            {"class": name, "documents": int(n), "accuracy": None if n == 0 else float(acc)}
            for name, n, acc in zip(
                loaded.class_names, per_class.support, per_class.per_class_accuracy, strict=True
            )
        ],
        "train_documents": len(corpora["train"]),
        "train_documents_used": len(corpora["train"]) - sum(dropped.values()),
        "train_documents_dropped_by_caps": dropped,
        "validation_accuracy": val["accuracy"],
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "stopped_early": result.stopped_early,
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "train_step_seconds": result.step_seconds,
        "train_compile_seconds": result.compile_seconds,
        "wall_seconds_this_call": time.perf_counter() - start,
        "params": n_params,
        "vocab_size": len(vocab),
        "docs_per_second": result.documents_seen / step_s,
        "tokens_per_second": result.tokens_seen / step_s,
        "documents_seen": result.documents_seen,
        "tokens_seen": result.tokens_seen,
        "resumed_from_step": result.resumed_from_step,
        "backend": jax.default_backend(),
        "embeddings": train_cfg.embeddings,
        **embed_info,
    }
    atomic_write_json(run_dir.final_path, final)
    return final


def load_run(workdir: str, which: str = "best", *, arch: str | None = None) -> TrainedRun:
    """Restores the `which` ("best" or "latest") model of a run folder written by training.

    Args:
      workdir: the run folder (`--workdir` of `experiments.train`).
      which: "best" (by validation accuracy) or "latest" (last saved step).
      arch: if given, the architecture the caller expects; another one raises RunFolderError.

    Raises:
      RunFolderError: not a run folder, or a run of another architecture than `arch`.
      CheckpointError: the checkpoint is missing, corrupt, or does not fit the saved config.
    """
    from attn_interp.data import DataConfig, Vocabulary
    from attn_interp.models import ModelConfig, make_model

    if which not in (BEST, LATEST):
        raise ValueError(f"which={which!r}: use {BEST!r} or {LATEST!r}.")
    run_dir = RunDir(workdir)
    workdir, config_path = run_dir.path, run_dir.config_path
    if not os.path.isfile(config_path):
        raise RunFolderError(
            f"{workdir} is not a training run folder (no {CONFIG_FILE}). Pass the --workdir of a "
            "run of `python -m experiments.train`."
        )
    try:
        with open(config_path) as f:
            record = json.load(f)
        model_cfg = config_from_json(ModelConfig, record["model"])
        train_cfg = config_from_json(TrainConfig, record["train"])
        data_cfg = config_from_json(DataConfig, record["data"])
        class_names = tuple(record["class_names"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise RunFolderError(
            f"{config_path} is unreadable or incomplete ({type(err).__name__}: {err}). Restore it "
            "from the run's checkpoint meta or retrain into a fresh --workdir."
        ) from err
    if arch is not None and model_cfg.arch != arch:
        raise RunFolderError(
            f"{workdir} holds a {model_cfg.arch!r} run, not {arch!r}. Pass the run folder of the "
            f"{arch} model (or drop the architecture you asked for)."
        )
    vocab_path = run_dir.vocab_path
    if not os.path.isfile(vocab_path):
        raise RunFolderError(f"{workdir} has no {VOCAB_FILE}; the run folder is incomplete.")
    vocab = Vocabulary.load(vocab_path)
    if len(vocab) != model_cfg.vocab_size:
        raise RunFolderError(
            f"{vocab_path} has {len(vocab)} ids but the model was built for "
            f"{model_cfg.vocab_size}: the vocabulary file belongs to another run. Copy back the "
            "run's own vocab.json or retrain."
        )
    model = make_model(model_cfg, rngs=nnx.Rngs(train_cfg.seed))
    ckpt = RunCheckpoints(workdir)
    try:
        # The latest checkpoint also holds the optimizer state (for resuming): restore it too.
        opt = make_optimizer(model, train_cfg) if which == LATEST else None
        meta = ckpt.restore(which, model, opt)
        step = ckpt.latest_step(which)
    finally:
        ckpt.close()
    saved = meta.get("run", {}).get("model")
    if saved is not None and saved != record["model"]:
        raise CheckpointError(
            f"The {which} checkpoint of {workdir} was written for model config {saved}, but "
            f"{CONFIG_FILE} says {record['model']}. One of them was copied from another run; "
            "retrain into a fresh --workdir."
        )
    model.eval()
    return TrainedRun(
        model=model,
        model_config=model_cfg,
        train_config=train_cfg,
        data_config=data_cfg,
        vocab=vocab,
        class_names=class_names,
        workdir=workdir,
        which=which,
        meta=meta,
        step=step,
        data_sha256=dict(record.get(DATA_SHA_KEY, {})),
        identity=record_digest(stable_record(record)),
    )
