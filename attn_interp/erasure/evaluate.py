"""Erasure tests on a trained run: load the run, encode its test split, run the suite shard by shard.

Output folder (default ``WORKDIR/erasure``):

  manifest.json     erasure config, run identity (`RunDir.identity`: the training configs and data),
                    checkpoint step and parameter digest, data fingerprint, version, and the
                    sha256 of every finished shard file
  shards/           shard_00000.npz, ...: results of `shard_docs` documents each (atomic writes);
                    a re-run skips the shards whose file matches its recorded sha256 and
                    recomputes any other (with a warning naming it; `attn_interp.shards`)
  results.npz       per-instance (and ragged "items/") arrays of every evaluated document, in split
                    order (`write_outputs`), plus "label" `[docs]`, "logits" `[docs, classes]` and
                    "all_unknown" `[docs]` (every token out of vocabulary)
  *.csv             the original code's CSVs (`write_outputs`)
  summary.json      `summarize` + "model" (accuracy over all evaluated documents, counts, among
                    them "all_unknown_documents", also logged) +
                    "throughput" (documents/s, evaluations/s, erasure time / encoder time)
  documents.jsonl   one line per document: doc_index, label, predicted, seq_len, items (the sentence
                    texts for HAN, the tokens for FLAN)

Every document with at least one token is evaluated (the paper's quirk Q8: accuracy over all of
them, erasure statistics over n > 1 in `summarize`). Each document's random draws are seeded by its
position in the split, and documents are erased in fixed blocks of split positions (`_Blocks`),
so results do not depend on the shard size or on interruptions, bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import logging
from flax import nnx

import attn_interp
from attn_interp import parallel
from attn_interp.data.batching import PackConfig
from attn_interp.erasure.config import AffineParams, ErasureConfig
from attn_interp.erasure.encode import (
    KernelBatch,
    ShapeTimer,
    data_fingerprint,
    encode_documents,
    encoder_pack_config,
    kernel_batches,
    params_fingerprint,
    split_batches,
)
from attn_interp.erasure.outputs import write_outputs
from attn_interp.erasure.results import (
    SuiteResults,
    concatenate_results,
    from_flat,
    take_documents,
    to_flat,
)
from attn_interp.erasure.suite import run_suite
from attn_interp.erasure.summary import summarize
from attn_interp.io_utils import atomic_write, json_default
from attn_interp.run_dirs import ERASURE_DIR, RESULTS_FILE, SUMMARY_FILE, ErasureDir
from attn_interp.shards import (
    SHARD_SUMS_KEY,
    ManifestMismatchError,
    ShardStore,
    load_npz,
    npz_member,
    open_npz,
    open_shards,
)
from attn_interp.types import Batch

ALL_UNKNOWN_KEY = "all_unknown"  # per document: every token is out of vocabulary (<unk>)
_TIMING_PREFIX = "shard/"  # scalar timings stored inside each shard file
# Revision of the engine's numbers, recorded in the manifest: bump it whenever a change of the
# engine changes results, so saved shards of an older engine are refused instead of mixed in
# (what each revision changed is in the commit history of this line).
RESULTS_REVISION = 9
# Documents are encoded, batched and erased in fixed blocks of this many split positions,
# whatever the shard size (see `_Blocks`).
BLOCK_DOCS = 512
_TIMING_KEYS = (_TIMING_PREFIX + "encode_seconds", _TIMING_PREFIX + "erasure_seconds")
# ErasureConfig fields that change how the work is chunked but never the results.
_RESULT_NEUTRAL_FIELDS = ("memory_budget_bytes",)

__all__ = [
    "SHARD_SUMS_KEY",
    "ManifestMismatchError",
    "evaluate_run",
    "load_erasure_results",
    "merge_shards",
]


def _items_of(text: str, hierarchical: bool) -> list[str]:
    """Item strings of a document, one per attention position (as `encode_corpus` builds them)."""
    from attn_interp.data import tokenize, tokenize_sentences

    if hierarchical:
        return [" ".join(s) for s in tokenize_sentences(text) if s]
    return list(tokenize(text))


# ---------------------------------------------------------------------------------------------
# Manifest.


def _manifest(
    run, config: ErasureConfig, *, split: str, max_docs, step, data_sha, n_docs
) -> dict[str, Any]:
    cfg = dataclasses.asdict(config)
    for name in _RESULT_NEUTRAL_FIELDS:
        cfg.pop(name)
    return json.loads(
        json.dumps(
            {
                "erasure_config": cfg,
                "workdir": run.workdir,
                "which": run.which,
                "checkpoint_step": step,
                "run_sha256": run.identity,  # configs + data the model was trained on
                "params_sha256": params_fingerprint(run.model),
                "arch": run.model_config.arch,
                "split": split,
                "max_docs": max_docs,
                "data_sha256": data_sha,
                "documents": n_docs,
                "shard_unit": "split_positions",  # shard s = split positions [s*N, (s+1)*N)
                "block_docs": BLOCK_DOCS,
                "package_version": attn_interp.__version__,
                "results_revision": RESULTS_REVISION,
            },
            default=json_default,
        )
    )


def _check_training_data(run, split: str, sha: str) -> None:
    """Refuses a split whose documents differ from those recorded in the run's config.json."""
    workdir, recorded = run.workdir, run.data_sha256.get(split)
    if recorded is not None and recorded != sha:
        raise ManifestMismatchError(
            f"The {split} split loaded now (sha256 {sha[:12]}...) is not the one {workdir} recorded "
            f"at training ({recorded[:12]}...): the dataset files changed since training. Restore "
            "the original data files (see data in config.json), or retrain on the new data."
        )


# ---------------------------------------------------------------------------------------------
# Forward pass and per-shard work.


@dataclasses.dataclass(frozen=True, eq=False)
class _ModelHead:
    """`model.head` as `head(state, values, weights)` for `run_suite(head_state=state)`.

    Hashed by identity (graph definitions may hold lists); the kernel cache keeps only this graph
    definition alive, and the parameters stay dynamic arguments, not constants of the program.
    """

    graphdef: Any

    def __call__(self, state, values: jax.Array, weights: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, state).head(values, weights)


def _make_head(model: nnx.Module, config: ErasureConfig) -> tuple[_ModelHead | None, Any]:
    """(head, head_state) of `model` for the engine's mask path; (None, None) when the engine
    uses the closed form (the affine head), so that the kernel's arguments do not hold the
    model's state and models of other architectures share its compilations."""
    if config.method != "mask":
        return None, None
    graphdef, state = nnx.split(model)
    return _ModelHead(graphdef), state


def _evaluations_per_document(results: SuiteResults, sufficiency: bool) -> np.ndarray:
    """Classifier outputs computed per document: base + n single erasures + curves of length n."""
    n = np.asarray(results.docs.seq_len, dtype=np.int64)
    curves = len(results.rankings) * (2 if sufficiency else 1)
    return 1 + n + curves * n


class _Work(NamedTuple):
    """What erases a block: the run, its encoder layout and head, the engine settings."""

    run: Any
    pack: PackConfig | None  # HAN: the packed layout of the encoder (`encoder_pack_config`)
    head: tuple[_ModelHead | None, Any]  # (head, head_state) for run_suite
    affine: AffineParams
    config: ErasureConfig
    timers: tuple[ShapeTimer, ShapeTimer]  # encoder, suite
    mesh: Any


def _erase(work: _Work, batch: KernelBatch) -> SuiteResults:
    """The suite on one kernel batch; results of its real documents (doc_id = split position)."""
    predicted = np.argmax(batch.logits, axis=-1).astype(np.int32)
    ids = np.where(batch.doc_index >= 0, batch.doc_index, 0)
    head, head_state = work.head

    def suite():
        return run_suite(
            batch.values,
            batch.scores,
            batch.mask,
            head=head,
            head_state=head_state,
            affine=work.affine,
            predicted=predicted,
            config=work.config,
            doc_ids=ids,
            mesh=work.mesh,
        )

    res = work.timers[1]((batch.values.shape, str(batch.values.dtype)), suite)
    res = res.with_extra(label=batch.labels, logits=batch.logits)
    return take_documents(res, np.flatnonzero(batch.doc_index >= 0))


def _run_batches(work: _Work, batches: Sequence[Batch]) -> tuple[SuiteResults, dict[str, float]]:
    """Encoder on `batches`, then the suite on their documents regrouped into the kernel shapes
    (`kernel_batches`); results sorted by doc_id, plus the timings."""
    enc_timer, suite_timer = work.timers
    enc0, suite0 = enc_timer.seconds, suite_timer.seconds
    docs = encode_documents(
        work.run.model, batches, pack=work.pack, timer=enc_timer, mesh=work.mesh
    )
    out = concatenate_results([_erase(work, b) for b in kernel_batches(docs)])
    out = take_documents(out, np.argsort(out.docs.doc_id, kind="stable"))
    timings = {
        _TIMING_PREFIX + "encode_seconds": enc_timer.seconds - enc0,
        _TIMING_PREFIX + "erasure_seconds": suite_timer.seconds - suite0,
    }
    return out, timings


# ---------------------------------------------------------------------------------------------
# Streaming merge of the shard files (bounded memory: one shard's array at a time).


def _is_item_key(key: str) -> bool:
    return key.startswith("items/")


def merge_shards(
    shard_paths: Sequence[str], results_path: str, *, keep_items: bool = False
) -> dict[str, np.ndarray]:
    """Concatenates the shard files into one `.npz` at `results_path`, streaming; returns the
    per-instance arrays (and the "items/" ones only if `keep_items`).

    The output equals `np.savez(results_path, **concatenate_results(shards))` without the
    "shard/" bookkeeping scalars; shards without documents are skipped. Each shard is read once,
    its arrays are appended to one raw spill file per key next to `results_path`, and the spill
    files are then copied into the zip members (written atomically, zip64), so the per-item arrays
    of all shards are never in memory together. Peak memory: the per-instance arrays of all
    documents plus one shard.
    """
    folder = os.path.dirname(os.path.abspath(results_path))
    keys: list[str] | None = None
    meta: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    rows: dict[str, int] = {}
    per_instance: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".merge.") as spill:
        files: dict[str, Any] = {}
        try:
            for path in shard_paths:
                with open_npz(path) as f:
                    names = [k for k in f.files if not k.startswith(_TIMING_PREFIX)]
                    if not names:
                        continue  # a shard without documents
                    if keys is None:
                        keys = names
                        for i, k in enumerate(keys):
                            files[k] = open(os.path.join(spill, f"{i}.bin"), "wb")  # noqa: SIM115
                            rows[k] = 0
                            per_instance[k] = []
                    elif set(names) != set(keys):
                        raise ValueError(
                            f"{path} holds other result keys than the earlier shards "
                            f"({sorted(set(names) ^ set(keys))[:6]}); delete the shard folder "
                            "(or pass overwrite=True) and run again."
                        )
                    for k in keys:
                        arr = np.ascontiguousarray(npz_member(f, k, path))
                        if k not in meta:
                            meta[k] = (arr.dtype, arr.shape[1:])
                        elif (arr.dtype, arr.shape[1:]) != meta[k]:
                            raise ValueError(f"{path}: {k} has dtype/shape {arr.dtype}{arr.shape}.")
                        files[k].write(arr.tobytes())
                        rows[k] += arr.shape[0]
                        if keep_items or not _is_item_key(k):
                            per_instance[k].append(arr)
        finally:
            for fh in files.values():
                fh.close()
        if keys is None:
            raise ValueError("no shard holds any document; nothing to merge.")

        def write(out):
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for i, k in enumerate(keys):
                    dtype, tail = meta[k]
                    header = {
                        "descr": np.lib.format.dtype_to_descr(dtype),
                        "fortran_order": False,
                        "shape": (rows[k], *tail),
                    }
                    with zf.open(k + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array_header_2_0(member, header)
                        with open(os.path.join(spill, f"{i}.bin"), "rb") as src:
                            shutil.copyfileobj(src, member, 1 << 22)

        atomic_write(results_path, write)
    return {k: np.concatenate(v) for k, v in per_instance.items() if v}


def _write_documents_file(path: str, results: SuiteResults, texts, hier: bool) -> None:
    """documents.jsonl, one line per evaluated document, streamed to disk (written atomically)."""
    docs, labels = results.docs, results.extra["label"]

    def write(out):
        for row, text_pos in enumerate(np.asarray(docs.doc_id).tolist()):
            line = json.dumps(
                {
                    "doc_index": int(text_pos),
                    "label": int(labels[row]),
                    "predicted": int(docs.predicted[row]),
                    "seq_len": int(docs.seq_len[row]),
                    "items": _items_of(texts[text_pos], hier),
                },
                ensure_ascii=False,
            )
            out.write(line.encode() + b"\n")

    atomic_write(path, write)


# ---------------------------------------------------------------------------------------------
# Fixed blocks of documents: results independent of the shard size.


class _Block(NamedTuple):
    """One block's results (sorted by doc_id; None without documents), timings and skipped
    split positions (documents without tokens)."""

    results: SuiteResults | None
    timings: dict[str, float]
    skipped: np.ndarray


class _Blocks:
    """Results of the fixed blocks of split positions [j * BLOCK_DOCS, (j + 1) * BLOCK_DOCS).

    Every document is encoded, batched and erased with the other documents of its block, always
    in the same batches and shapes, so its results do not depend on `shard_docs` (floating-point
    results depend on the batch shapes they were computed in). The last block is kept for the
    next shard, which usually needs it again when shards are smaller than blocks.
    """

    def __init__(self, compute: Callable[[int], _Block]):
        self._compute = compute
        self._last: tuple[int, _Block] | None = None

    def get(self, j: int) -> tuple[_Block, bool]:
        """(block j, computed just now)."""
        fresh = self._last is None or self._last[0] != j
        if fresh:
            self._last = (j, self._compute(j))
        return self._last[1], fresh


def _all_unknown(doc, unk_id: int) -> bool:
    """Every token of an encoded document (FLAN: ids; HAN: a list of sentences) is <unk>."""
    ids = np.concatenate(doc) if isinstance(doc, list) else np.asarray(doc)
    return bool(np.all(ids == unk_id))


def _compute_block(work: _Work, texts_split, j: int) -> _Block:
    """Block j of `texts_split`."""
    lo, hi = j * BLOCK_DOCS, min((j + 1) * BLOCK_DOCS, len(texts_split))
    part, batches = split_batches(work.run, texts_split, lo, hi)
    res, timings = None, {}
    if batches:
        res, timings = _run_batches(work, batches)
        unknown = np.array([_all_unknown(d, work.run.vocab.unk_id) for d in part.docs])
        res = res.with_extra(**{ALL_UNKNOWN_KEY: unknown})
    return _Block(res, timings, np.asarray(part.skipped_doc_index, np.int64) + lo)


def _shard_results(blocks: _Blocks, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Results of split positions [lo, hi) cut from their blocks, with the timings of the blocks
    computed for it and its count of documents without tokens (all under "shard/")."""
    parts = []
    timing = dict.fromkeys(_TIMING_KEYS, 0.0)
    skipped = 0
    for j in range(lo // BLOCK_DOCS, (hi - 1) // BLOCK_DOCS + 1):
        block, fresh = blocks.get(j)
        skipped += int(np.sum((block.skipped >= lo) & (block.skipped < hi)))
        if fresh:
            for k in _TIMING_KEYS:
                timing[k] += float(block.timings.get(k, 0.0))
        if block.results is not None:
            ids = block.results.docs.doc_id
            parts.append(take_documents(block.results, np.flatnonzero((ids >= lo) & (ids < hi))))
    out = to_flat(concatenate_results(parts)) if parts else {}
    if out and out["doc_id"].size == 0:
        out = {}
    out.update({k: np.float64(v) for k, v in timing.items()})
    out[_TIMING_PREFIX + "skipped_no_tokens"] = np.int64(skipped)
    return out


def _report_all_unknown(results: SuiteResults, split: str) -> int:
    """Counts (and logs) the evaluated documents without any known word: the model sees only
    <unk> items there, so their erasure results say nothing about the text."""
    unknown = np.asarray(results.extra[ALL_UNKNOWN_KEY], bool)
    count = int(unknown.sum())
    if count:
        logging.warning(
            "%d of the %d evaluated %s documents have no word in the vocabulary (every item is "
            "<unk>; first split positions %s); they are scored like the others and counted in "
            "summary.json model.all_unknown_documents",
            count,
            unknown.size,
            split,
            results.docs.doc_id[unknown][:5].tolist(),
        )
    return count


class _Setup(NamedTuple):
    """A checked request: the run, the documents to erase and the output folder's shards."""

    run: Any
    texts: Any  # the `attn_interp.data.Split` to erase (after max_docs)
    folder: ErasureDir
    shards: ShardStore


def _load_request(workdir: str, which: str, split: str, max_docs: int | None, mesh):
    """(run, documents of `split`) after checking the run, the split and its recorded data."""
    from attn_interp import data as data_lib
    from attn_interp.train.run import load_run

    run = load_run(workdir, which)
    loaded = data_lib.load_splits(run.data_config)
    if split not in loaded.splits:
        raise ValueError(
            f"split {split!r} not in the run's dataset; use one of {list(loaded.splits)}."
        )
    texts = loaded.splits[split]
    _check_training_data(run, split, texts.fingerprint())
    if max_docs is not None:
        texts = texts.head(max_docs)
    if len(texts) == 0:
        raise ValueError(f"the {split} split of {run.workdir} has no documents.")
    if mesh is not None:
        parallel.replicate(run.model, parallel.resolve_mesh(mesh))  # checks its axes
    return run, texts


def _prepare_folder(
    run, texts, config: ErasureConfig, out_dir, overwrite: bool, shard_docs: int, **ident
) -> _Setup:
    """Opens (or creates) the output folder (`open_shards`): refuses results of another setup
    (or shard size) unless `overwrite`."""
    folder = ErasureDir(out_dir or os.path.join(run.workdir, ERASURE_DIR))
    manifest = _manifest(
        run,
        config,
        step=run.step,
        data_sha=data_fingerprint(texts.texts, texts.labels),
        n_docs=len(texts),
        **ident,
    )
    if overwrite and os.path.isdir(folder.path):
        shutil.rmtree(folder.path)
    shards = open_shards(
        folder,
        manifest,
        shard_docs,
        stage="erasure",
        refuse=True,  # another setup's results are deleted only with --overwrite
        log=logging.warning,
        ignore=("workdir",),  # the same run may be moved or mounted elsewhere
    )
    return _Setup(run, texts, folder, shards)


def _compute_shards(setup: _Setup, work: _Work, progress: bool) -> list[str]:
    """Writes every shard not already complete; returns all shard paths."""
    blocks = _Blocks(functools.partial(_compute_block, work, setup.texts))
    return setup.shards.fill(
        len(setup.texts),
        lambda lo, hi: _shard_results(blocks, lo, hi),
        desc="erasure",
        progress=progress,
    )


def _shard_timings(paths: Sequence[str]) -> dict[str, float]:
    """The "shard/" timings and counts summed over the shard files."""
    timing: dict[str, float] = {}
    for path in paths:
        with open_npz(path) as f:
            for k in f.files:
                if k.startswith(_TIMING_PREFIX):
                    timing[k] = timing.get(k, 0.0) + float(f[k])
    return timing


def _throughput(results: SuiteResults, timing, config: ErasureConfig, wall: float) -> dict:
    """summary.json "throughput": documents and classifier evaluations per second of erasure."""
    encode_s = timing[_TIMING_PREFIX + "encode_seconds"]
    erasure_s = timing[_TIMING_PREFIX + "erasure_seconds"]
    n_docs = results.num_docs
    evaluations = int(_evaluations_per_document(results, config.sufficiency).sum())
    return {
        "documents": n_docs,
        "evaluations": evaluations,
        "encode_seconds": encode_s,
        "erasure_seconds": erasure_s,
        "documents_per_second": n_docs / erasure_s if erasure_s > 0 else None,
        "evaluations_per_second": evaluations / erasure_s if erasure_s > 0 else None,
        "erasure_over_encode": erasure_s / encode_s if encode_s > 0 else None,
        "wall_seconds_this_call": wall,
        "backend": jax.default_backend(),
    }


def _model_summary(setup: _Setup, results: SuiteResults, timing, which: str, split: str) -> dict:
    """summary.json "model": accuracy over every evaluated document and the document counts."""
    correct = results.docs.predicted == results.extra["label"]
    return {
        "arch": setup.run.model_config.arch,
        "which": which,
        "checkpoint_step": setup.run.step,
        "split": split,
        "accuracy": float(np.mean(correct)),
        "documents": results.num_docs,
        "skipped_no_tokens": int(timing[_TIMING_PREFIX + "skipped_no_tokens"]),
        "all_unknown_documents": _report_all_unknown(results, split),
        "documents_in_split": len(setup.texts),
    }


def _write_final_outputs(setup: _Setup, results: SuiteResults, summary, throughput) -> None:
    """The CSVs, summary.json (moved in last: it marks the folder finished) and documents.jsonl;
    results.npz is already merged (with the "items/" arrays)."""
    out_dir = setup.folder.path
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".outputs.") as staging:
        write_outputs(results, staging, summary=summary, throughput=throughput)
        names = sorted(n for n in os.listdir(staging) if n not in (RESULTS_FILE, SUMMARY_FILE))
        for name in [*names, SUMMARY_FILE]:
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    hier = setup.run.model_config.hierarchical
    _write_documents_file(setup.folder.documents_path, results, setup.texts.texts, hier)


# ---------------------------------------------------------------------------------------------
# Public API.


def evaluate_run(
    workdir: str,
    config: ErasureConfig,
    *,
    split: str = "test",
    max_docs: int | None = None,
    out_dir: str | None = None,
    shard_docs: int = 512,
    progress: bool = True,
    which: str = "best",
    overwrite: bool = False,
    mesh=None,
) -> str:
    """Runs the erasure suite on every document of a trained run's `split`; returns the output dir.

    Args:
      workdir: a training run folder (`experiments.train --workdir`).
      config: erasure settings; `memory_budget_bytes` is passed to the engine (it chunks large
        batches; results do not depend on it).
      split: "test" (the paper), "validation" or "train".
      max_docs: only the first N documents of the split.
      out_dir: output folder (default ``WORKDIR/erasure``).
      shard_docs: documents per shard; each finished shard is saved, and a re-run skips it.
      progress: show a tqdm bar over documents.
      which: "best" or "latest" checkpoint.
      overwrite: delete earlier results in `out_dir` (of any setup) and start over.
      mesh: split each batch's documents over this `jax.sharding.Mesh` (axis "data",
        `attn_interp.parallel.data_mesh()`; None = one device).
        Results equal one device's up to float rounding: the work is per document.

    Memory: the split is encoded one shard at a time (shard s = split positions
    [s * shard_docs, (s + 1) * shard_docs)), finished shards are not kept in memory, and the
    merge into results.npz streams them (`merge_shards`); only the per-instance arrays of all
    documents are held at the end (for summary.json and the CSVs).

    Raises:
      RunFolderError / CheckpointError: `workdir` is not a usable run folder.
      ManifestMismatchError: `out_dir` holds results of another config, checkpoint or data, and
        `overwrite` is False.
    """
    if shard_docs < 1:
        raise ValueError(f"shard_docs must be >= 1, got {shard_docs}.")
    if max_docs is not None and max_docs < 1:
        raise ValueError(f"max_docs must be a positive integer or None, got {max_docs}.")
    if not isinstance(config, ErasureConfig):
        raise TypeError(f"config must be an ErasureConfig, got {type(config).__name__}.")
    run, texts = _load_request(workdir, which, split, max_docs, mesh)
    mesh = parallel.resolve_mesh(mesh) if mesh is not None else None
    setup = _prepare_folder(
        run,
        texts,
        config,
        out_dir,
        overwrite,
        shard_docs,
        split=split,
        max_docs=max_docs,
    )
    affine = AffineParams(*run.model.head_params())
    timers = (ShapeTimer(), ShapeTimer())
    work = _Work(
        run, encoder_pack_config(run), _make_head(run.model, config), affine, config, timers, mesh
    )
    start = time.perf_counter()
    paths = _compute_shards(setup, work, progress)
    wall = time.perf_counter() - start

    timing = _shard_timings(paths)
    if timing.get(_TIMING_PREFIX + "skipped_no_tokens", 0) >= len(texts):
        raise ValueError(f"the {split} split of {run.workdir} has no document with tokens.")
    results = from_flat(merge_shards(paths, setup.folder.results_path))
    summary = summarize(results)
    summary["model"] = _model_summary(setup, results, timing, which, split)
    summary["q10_prediction_mismatch"] = int(np.sum(results.docs.prediction_mismatch))
    _write_final_outputs(setup, results, summary, _throughput(results, timing, config, wall))
    return setup.folder.path


def load_erasure_results(out_dir: str) -> tuple[SuiteResults, dict]:
    """(results, summary.json content) of a finished `evaluate_run` folder."""
    folder = ErasureDir(out_dir)
    out_dir, res_path, sum_path = folder.path, folder.results_path, folder.summary_path
    missing = [p for p in (res_path, sum_path) if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{out_dir} has no finished erasure results (missing {', '.join(map(os.path.basename, missing))}). "
            "Run `python -m experiments.erasure --workdir=RUN` (it resumes from saved shards)."
        )
    with open(sum_path) as f:
        summary = json.load(f)
    return from_flat(load_npz(res_path)), summary
