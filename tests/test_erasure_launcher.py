"""Tests of the erasure launcher on tiny trained runs: output files, agreement with a direct
per-document `run_suite`, resumption after a crash, manifest checks, bad folders, the CLI."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from flax import nnx
from helpers import (
    assert_minimum_bounds_every_ranking,
    assert_same_erasure_results,
    local_data_config,
    write_topic_split,
)

from attn_interp import run_dirs
from attn_interp.data import encode_corpus, load_splits
from attn_interp.erasure import AffineParams, ErasureConfig, run_suite, to_flat
from attn_interp.erasure import evaluate as ev
from attn_interp.models import masked_softmax
from attn_interp.train.config import TrainConfig
from attn_interp.train.run import RunFolderError, load_run, train_and_evaluate

CFG = ErasureConfig(num_random=2, memory_budget_bytes=50_000)  # small budget: several chunks
SHARD = 5


def _load_flat(out_dir):
    """(results as the flat results.npz dict the assertions index, summary.json)."""
    results, summary = ev.load_erasure_results(out_dir)
    return to_flat(results), summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per family: {"han": workdir, "flan": workdir}."""
    root = tmp_path_factory.mktemp("erasure_runs")
    for name, n, seed in (("train", 40, 1), ("validation", 10, 2), ("test", 17, 3)):
        write_topic_split(root / f"{name}.jsonl", n, seed, unknown=2 if name == "test" else 0)
    data_cfg = local_data_config(root)
    train_cfg = TrainConfig(
        epochs=1, batch_size=8, learning_rate=1e-2, save_every_steps=0, progress=False
    )
    out = {}
    for family, arch in (("han", "han_rnn"), ("flan", "flan_conv")):
        workdir = str(root / arch)
        train_and_evaluate(
            data_cfg,
            train_cfg,
            workdir,
            arch=arch,
            model_overrides={"embed_dim": 8, "hidden": 4},
            min_count=1,
        )
        out[family] = workdir
    return out


@pytest.fixture(scope="module")
def han_out(runs):
    return ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, progress=False)


def _csv_rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_output_files_rows_and_documents(runs, han_out):
    results, summary = _load_flat(han_out)
    run = load_run(runs["han"])
    test = load_splits(run.data_config).splits["test"]
    n = len(test)
    assert sorted(results["doc_id"].tolist()) == list(range(n))
    assert np.all(np.diff(results["doc_id"]) > 0)  # split order
    np.testing.assert_array_equal(results["label"], test.labels)
    for name in ("first_vs_second.csv", "dec_flip_stats.csv", "rand_sample_stats.csv"):
        rows = _csv_rows(os.path.join(han_out, name))
        assert [int(r["id"]) for r in rows] == list(range(1, n + 1))
    assert summary["counts"]["total"] == n
    assert summary["counts"]["excluded_n_eq_1"] == int(np.sum(results["seq_len"] == 1))
    assert summary["counts"]["excluded_n_eq_1"] > 0  # the data has single-sentence documents
    accuracy = float(np.mean(results["predicted"] == test.labels))
    assert summary["model"]["accuracy"] == pytest.approx(accuracy)
    assert summary["q10_prediction_mismatch"] == int(results["prediction_mismatch"].sum())
    # The two documents of words never seen in training are counted (and flagged), not hidden.
    np.testing.assert_array_equal(np.flatnonzero(results["all_unknown"]), [0, 1])
    assert summary["model"]["all_unknown_documents"] == 2
    tp = summary["throughput"]
    assert tp["documents"] == n and tp["erasure_over_encode"] > 0
    assert tp["evaluations"] > n
    with open(os.path.join(han_out, "documents.jsonl")) as f:
        docs = [json.loads(line) for line in f]
    assert [d["doc_index"] for d in docs] == results["doc_id"].tolist()
    for d, text, label in zip(docs, test.texts, test.labels, strict=True):
        assert len(d["items"]) == d["seq_len"]
        assert d["label"] == label
        # HAN items are sentences: their words, in order, are the document's words
        assert " ".join(d["items"]).split() == [w for w in text.lower().replace(".", " . ").split()]
    manifest = json.load(open(os.path.join(han_out, "manifest.json")))
    assert manifest["shard_docs"] == SHARD and manifest["documents"] == n
    assert len(os.listdir(os.path.join(han_out, "shards"))) == -(-n // SHARD)


@pytest.mark.parametrize("family", ["han", "flan"])
def test_results_agree_with_direct_run_suite(runs, family, han_out, flan_cli_out):
    """Reference: all documents in one batch padded to the largest, encoded, `run_suite` directly.

    The launcher batches and shards differently, so this also checks padding invariance, random
    draws included (they are keyed per document and independent of the padded width).
    """
    out = han_out if family == "han" else flan_cli_out[0]
    results, _ = _load_flat(out)
    run = load_run(runs[family])
    test = load_splits(run.data_config).splits["test"].head(len(results["doc_id"]))
    corpus = encode_corpus(test, run.vocab, hierarchical=run.model_config.hierarchical)
    docs = corpus.docs
    if run.model_config.hierarchical:
        width = max(len(s) for d in docs for s in d) + 3
        tokens = np.zeros((len(docs), max(len(d) for d in docs) + 2, width), np.int32)
        for r, d in enumerate(docs):
            for i, s in enumerate(d):
                tokens[r, i, : len(s)] = s
    else:
        tokens = np.zeros((len(docs), max(len(d) for d in docs) + 5), np.int32)
        for r, d in enumerate(docs):
            tokens[r, : len(d)] = d
    inputs, logits = nnx.jit(lambda m, t: (m.encode(t), m(t)))(run.model, jnp.asarray(tokens))
    logits = np.asarray(logits)
    ref = to_flat(
        run_suite(
            inputs.values,
            inputs.scores,
            inputs.mask,
            affine=AffineParams(*run.model.head_params()),
            predicted=np.argmax(logits, -1),
            config=CFG,
            doc_ids=corpus.doc_index,
        )
    )
    assert_minimum_bounds_every_ranking(results)
    assert_minimum_bounds_every_ranking(ref)
    np.testing.assert_array_equal(results["predicted"], np.argmax(logits, -1))
    np.testing.assert_allclose(results["logits"], logits, rtol=1e-4, atol=1e-5)
    assert set(ref) <= set(results)
    compared = 0
    for key, want in ref.items():
        got = results[key]
        assert got.shape == want.shape, key
        compared += 1
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)
    assert compared > 100
    n = results["seq_len"]
    for target, top in (("rand", "top"), ("grad_rand", "grad_top"), ("gxa_rand", "gxa_top")):
        r = results[f"single_{target}_index"]
        np.testing.assert_array_equal(r[n < 2], -1)
        ok = n >= 2
        assert np.all(
            (r[ok] >= 0) & (r[ok] < n[ok]) & (r[ok] != results[f"single_{top}_index"][ok])
        )
    for i in range(CFG.num_random):
        k = results[f"rank_random{i}_k"]
        assert np.all((k == -1) | ((k >= 1) & (k <= n)))
    # the full model's attention weights sum to one over real items
    weights = np.asarray(masked_softmax(inputs.scores, inputs.mask))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_interrupted_run_resumes_to_identical_results(runs, han_out, tmp_path, monkeypatch):
    real = ev._shard_results
    calls = []

    def crash_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("simulated crash")
        calls.append(1)
        return real(*args, **kwargs)

    out = str(tmp_path / "resumed")
    monkeypatch.setattr(ev, "_shard_results", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, progress=False, out_dir=out)
    assert os.listdir(os.path.join(out, "shards")) == ["shard_00000.npz"]  # no temp files left
    assert not os.path.exists(os.path.join(out, "results.npz"))

    resumed_calls = []

    def counting(*args, **kwargs):
        resumed_calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "_shard_results", counting)
    ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, progress=False, out_dir=out)
    n_shards = len(os.listdir(os.path.join(han_out, "shards")))
    assert len(resumed_calls) == n_shards - 1
    assert_same_erasure_results(out, han_out)
    for name in ("first_vs_second.csv", "documents.jsonl"):
        with open(os.path.join(out, name)) as a, open(os.path.join(han_out, name)) as b:
            assert a.read() == b.read()


@pytest.mark.parametrize("family", ["han", "flan"])
def test_results_do_not_depend_on_the_shard_size(runs, family, tmp_path, monkeypatch, caplog):
    """Shard sizes 1, 6, 64 and the default give bit-identical results.npz (logits, divergences,
    item orderings with their ties) and summary.json (AOPC included): documents are erased in
    fixed blocks of split positions (here 8 documents, so shards cut blocks and span several)."""
    monkeypatch.setattr(ev, "BLOCK_DOCS", 8, raising=False)
    caplog.set_level(logging.WARNING)
    outs = {}
    for shard in (1, 6, 64, None):
        kw = {} if shard is None else {"shard_docs": shard}
        out = str(tmp_path / f"shard_{shard}")
        outs[shard] = _load_flat(
            ev.evaluate_run(runs[family], CFG, progress=False, out_dir=out, **kw)
        )
    want, want_summary = outs.pop(None)
    want_summary.pop("throughput")
    assert "2 of the 19 evaluated test documents have no word in the vocabulary" in caplog.text
    assert "aopc" in json.dumps(want_summary) and "logits" in want
    for shard, (got, summary) in outs.items():
        assert list(got) == list(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=(shard, key))
        summary.pop("throughput")
        assert summary == want_summary, shard


def test_corrupted_shards_are_recomputed_and_bad_files_named(
    runs, han_out, tmp_path, monkeypatch, caplog
):
    """A truncated shard (or one the manifest has no sha256 for) is recomputed with a warning
    naming it; a damaged .npz read directly gives an error naming the file."""
    out = str(tmp_path / "copy")
    shutil.copytree(han_out, out)
    shard_dir = os.path.join(out, run_dirs.SHARD_DIR)
    manifest = json.load(open(os.path.join(out, run_dirs.MANIFEST_FILE)))
    names = sorted(os.listdir(shard_dir))
    assert sorted(manifest[ev.SHARD_SUMS_KEY]) == names
    bad, unrecorded = (os.path.join(shard_dir, n) for n in names[1:3])
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) // 2)
    with pytest.raises(ValueError, match=rf"{bad} is not a readable \.npz"):
        ev.merge_shards([bad], str(tmp_path / "merged.npz"))
    del manifest[ev.SHARD_SUMS_KEY][os.path.basename(unrecorded)]
    with open(os.path.join(out, run_dirs.MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    calls = []
    real = ev._shard_results
    monkeypatch.setattr(ev, "_shard_results", lambda *a: calls.append(a[1:]) or real(*a))
    with caplog.at_level(logging.WARNING):
        ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, progress=False, out_dir=out)
    assert calls == [(SHARD, 2 * SHARD), (2 * SHARD, 3 * SHARD)]
    assert f"{bad} does not match its sha256" in caplog.text
    assert f"{unrecorded} has no sha256" in caplog.text
    got, want = _load_flat(out)[0], _load_flat(han_out)[0]
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    results = os.path.join(out, run_dirs.RESULTS_FILE)
    with open(results, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=rf"{results} is not a readable \.npz"):
        _load_flat(out)


def test_changed_setup_is_refused_and_budget_change_is_not(runs, han_out):
    with pytest.raises(
        ev.ManifestMismatchError, match=r"erasure_config\.seed: 0 -> 1.*--overwrite"
    ):
        ev.evaluate_run(runs["han"], ErasureConfig(num_random=2, seed=1), out_dir=han_out)
    with pytest.raises(ev.ManifestMismatchError, match=r"max_docs: None -> 4"):
        ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, max_docs=4, out_dir=han_out)
    # shards of an engine whose numbers differ (an older results revision) are refused too
    manifest = os.path.join(han_out, run_dirs.MANIFEST_FILE)
    with open(manifest) as f:
        saved = f.read()
    older = json.loads(saved)
    older["results_revision"] = ev.RESULTS_REVISION - 1
    with open(manifest, "w") as f:
        json.dump(older, f)
    with pytest.raises(
        ev.ManifestMismatchError,
        match=rf"results_revision: {ev.RESULTS_REVISION - 1} -> {ev.RESULTS_REVISION}",
    ):
        ev.evaluate_run(runs["han"], CFG, shard_docs=SHARD, out_dir=han_out)
    with open(manifest, "w") as f:
        f.write(saved)
    # the memory budget changes only the chunking: the saved shards are reused
    before = _load_flat(han_out)[0]
    cfg = ErasureConfig(num_random=2, memory_budget_bytes=10**9)
    ev.evaluate_run(runs["han"], cfg, shard_docs=SHARD, progress=False, out_dir=han_out)
    after = _load_flat(han_out)[0]
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(RunFolderError, match="not a training run folder"):
        ev.evaluate_run(str(tmp_path), CFG, progress=False)
    with pytest.raises(FileNotFoundError, match="no finished erasure results"):
        _load_flat(str(tmp_path))


def test_take_documents_regroups_ragged_items():
    mask = np.arange(3)[None, :] < np.array([2, 0, 3])[:, None]
    results = run_suite(
        np.ones((3, 3, 1), np.float32),
        np.zeros((3, 3), np.float32),
        mask,
        affine=(np.ones((1, 2), np.float32), np.zeros(2, np.float32)),
        config=ErasureConfig(),
        doc_ids=np.array([7, 8, 9]),
    )
    results = results._replace(items=results.items._replace(alpha=np.array([1, 2, 3, 4, 5])))
    out = ev.take_documents(results, np.array([2, 0]))
    np.testing.assert_array_equal(out.docs.doc_id, [9, 7])
    np.testing.assert_array_equal(out.items.alpha, [3, 4, 5, 1, 2])


@pytest.fixture(scope="module")
def flan_cli_out(runs, tmp_path_factory):
    """The FLAN run evaluated through the command-line launcher: (out_dir, printed text)."""
    from experiments import erasure as cli

    fv = flags.FlagValues()
    cli.define_flags(fv)
    out = str(tmp_path_factory.mktemp("flan_cli") / "erasure")
    fv(
        [
            "erasure",
            f"--workdir={runs['flan']}",
            f"--out_dir={out}",
            "--num_random=2",
            "--max_docs=9",
            "--shard_docs=3",
            "--memory_budget_gb=0.00005",
            "--noprogress",
        ]
    )
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert cli.run(fv) == out
    return out, text.getvalue()


def test_cli_prints_headline_numbers(flan_cli_out):
    out, text = flan_cli_out
    assert f"erasure outputs: {out}" in text
    assert "Table 2" in text and "never-flip" in text and "random1" in text
    results, summary = _load_flat(out)
    assert results["doc_id"].tolist() == list(range(9))
    assert summary["model"]["arch"] == "flan_conv"
    assert f"model accuracy {100 * summary['model']['accuracy']:.2f}%" in text
    assert "all out of vocabulary 2" in text
