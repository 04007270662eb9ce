"""`evaluate_followups`: the follow-up tests on a trained run's test split (the main job's stage
after erasure), resumable and keyed by what produced it.

Output folder (default ``WORKDIR/followups``):

  manifest.json   config, run identity, checkpoint parameter digest, data fingerprint, other
                  seed's run, revision, and the sha256 of every finished shard file; results of
                  another setup are recomputed, never mixed in
  shards/         shard_00000.npz, ...: `shard_docs` documents each (atomic writes); a re-run
                  skips the shards whose file matches its recorded sha256 and recomputes any
                  other, printing why (`attn_interp.shards`)
  results.npz     per-document columns (split order) and ragged "items/" arrays
  followups.csv   the per-document columns (docs/followups.md documents every column)
  summary.json    `FollowupSummary.to_json()` plus "seconds"
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np

import attn_interp
from attn_interp.erasure.config import AffineParams
from attn_interp.erasure.encode import (
    EncodedDocs,
    data_fingerprint,
    encode_documents,
    encoder_pack_config,
    kernel_batches,
    params_fingerprint,
    split_batches,
)
from attn_interp.followups.batch import run_followups
from attn_interp.followups.config import FollowupConfig
from attn_interp.followups.summary import FollowupSummary, document_columns, summarize_followups
from attn_interp.io_utils import atomic_write_json, atomic_write_npz, atomic_write_text
from attn_interp.run_dirs import FollowupDir, RunDir
from attn_interp.shards import load_npz, open_shards

# Bump when a change of these tests changes their numbers: older results are then recomputed.
FOLLOWUP_REVISION = 5


def _manifest(run, other, config: FollowupConfig, split: str, max_docs, data_sha: str) -> dict:
    return {
        "followup_config": json.loads(json.dumps(dataclasses.asdict(config))),
        "run_sha256": run.identity,
        "params_sha256": params_fingerprint(run.model),
        "other_run_sha256": None if other is None else other.identity,
        "other_params_sha256": None if other is None else params_fingerprint(other.model),
        "split": split,
        "max_docs": max_docs,
        "data_sha256": data_sha,
        "revision": FOLLOWUP_REVISION,
        "version": attn_interp.__version__,
    }


def _log(message: str) -> None:
    print(f"followups: {message}")


def _encode(run, batches) -> EncodedDocs:
    """The run's encoder on `batches` (HAN: the packed layout)."""
    return encode_documents(run.model, batches, pack=encoder_pack_config(run))


def _shard_columns(texts, lo: int, hi: int, run, other, config: FollowupConfig):
    """Runs the tests on documents [lo, hi) of `texts`, in the kernel shapes of
    `kernel_batches`; per-document columns in split order (empty without documents)."""
    _, batches = split_batches(run, texts, lo, hi)
    if not batches:
        return {}
    docs = _encode(run, batches)
    others: list = [None] * len(docs.seq_len)
    if other is not None:
        other_docs = _encode(other, batches)
        if not np.array_equal(other_docs.seq_len, docs.seq_len):
            raise ValueError("the other seed's model sees other items (tokenisation differs).")
        others = kernel_batches(other_docs)
    affine = AffineParams(*run.model.head_params())
    parts = []
    for batch, other_batch in zip(kernel_batches(docs), others, strict=False):
        res = run_followups(
            batch.values,
            batch.scores,
            batch.mask,
            config=config,
            affine=affine,
            predicted=np.argmax(batch.logits, -1),
            doc_ids=np.maximum(batch.doc_index, 0),
            other_scores=None if other_batch is None else other_batch.scores,
        )
        cols = document_columns(res, config)
        cols["doc_index"] = batch.doc_index
        cols["label"] = batch.labels
        parts.append(_take(cols, np.flatnonzero(batch.doc_index >= 0)))
    out = _concat(parts)
    return _take(out, np.argsort(out["doc_index"], kind="stable"))


def _take(cols: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The documents at `rows` of flat columns; ragged "items/" arrays regrouped per document."""
    starts = np.concatenate([[0], np.cumsum(cols["seq_len"], dtype=np.int64)])
    segs = [np.arange(starts[r], starts[r + 1]) for r in rows]
    items = np.concatenate(segs) if segs else np.zeros(0, np.int64)
    return {k: v[items] if k.startswith("items/") else v[rows] for k, v in cols.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Flat columns of several batches (same keys) joined in order."""
    if not parts:
        raise ValueError("nothing to concatenate.")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def evaluate_followups(
    workdir: str,
    config: FollowupConfig,
    *,
    split: str = "test",
    max_docs: int | None = None,
    out_dir: str | None = None,
    other_workdir: str | None = None,
    shard_docs: int = 512,
    progress: bool = True,
) -> str:
    """Runs the follow-up tests on every document of a trained run's `split`; returns out_dir.

    other_workdir: a run of the same architecture and data with another seed; its attention
      becomes the "other_seed" baseline. Finished results of the same setup are reused; any
      difference in the manifest (config, model, data, other run, revision) recomputes them.
    """
    from attn_interp import data as data_lib
    from attn_interp.train.run import load_run

    if not isinstance(config, FollowupConfig):
        raise TypeError(f"config must be a FollowupConfig, got {type(config).__name__}.")
    run = load_run(workdir)
    other = None
    if other_workdir is not None:
        other = load_run(other_workdir, arch=run.model_config.arch)
        if other.data_config != run.data_config or other.vocab != run.vocab:
            raise ValueError(f"{other_workdir} was trained on other data than {workdir}.")
    texts = data_lib.load_splits(run.data_config).splits[split]
    if max_docs is not None:
        texts = texts.head(max_docs)
    folder = RunDir(run.workdir).followups(out_dir)
    out_dir = folder.path
    manifest = _manifest(
        run, other, config, split, max_docs, data_fingerprint(texts.texts, texts.labels)
    )
    # Results of another setup are recomputed, never mixed in.
    shards = open_shards(folder, manifest, shard_docs, stage="follow-up", refuse=False, log=_log)
    if folder.is_finished():
        return out_dir
    start = time.perf_counter()
    paths = shards.fill(
        len(texts),
        lambda lo, hi: _shard_columns(texts, lo, hi, run, other, config),
        desc="followups",
        progress=progress,
    )
    columns = _concat([c for c in map(load_npz, paths) if c])
    atomic_write_npz(folder.results_path, columns)
    write_csv(folder.csv_path, columns)
    summary = summarize_followups(columns, config, labels=columns["label"]).to_json()
    summary["seconds_this_call"] = time.perf_counter() - start
    summary["backend"] = jax.default_backend()
    atomic_write_json(folder.summary_path, summary)
    return out_dir


def write_csv(path: str, columns: dict[str, np.ndarray]) -> None:
    """The per-document columns (not the "items/" arrays) as CSV, doc_index first."""
    names = ["doc_index", "label"] + [
        k for k in columns if not k.startswith("items/") and k not in ("doc_index", "label")
    ]
    rows = [",".join(names)]
    cols = [np.asarray(columns[k]) for k in names]
    for i in range(len(cols[0])):
        rows.append(",".join(_fmt(c[i]) for c in cols))
    atomic_write_text(path, "\n".join(rows) + "\n")


def _fmt(x) -> str:
    if isinstance(x, np.bool_ | bool):
        return str(int(x))
    if isinstance(x, np.floating):
        return "" if not np.isfinite(x) else f"{float(x):.6g}"
    return str(x)


def load_followups(out_dir: str) -> tuple[dict[str, np.ndarray], FollowupSummary]:
    """(per-document columns and items, summary) of a finished `evaluate_followups` folder."""
    folder = FollowupDir(out_dir)
    res_path, sum_path = folder.results_path, folder.summary_path
    if not (os.path.isfile(res_path) and os.path.isfile(sum_path)):
        raise FileNotFoundError(f"{out_dir} has no finished follow-up results.")
    with np.load(res_path, allow_pickle=False) as f:
        columns = {k: f[k] for k in f.files}
    with open(sum_path) as f:
        raw = json.load(f)
    fields = FollowupSummary._fields
    return columns, FollowupSummary.from_json({k: raw[k] for k in fields})
