"""The follow-up stage on tiny trained runs: outputs, agreement with a direct per-document call,
the other seed's baseline, reuse and recomputation keyed by the manifest."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from helpers import local_data_config, write_topic_split

from attn_interp.data import encode_corpus, load_splits
from attn_interp.erasure.config import AffineParams
from attn_interp.followups import FollowupConfig, run_followups
from attn_interp.followups.stage import evaluate_followups, load_followups
from attn_interp.followups.summary import document_columns
from attn_interp.run_dirs import FOLLOWUPS_CSV_FILE, FollowupDir
from attn_interp.shards import SHARD_SUMS_KEY
from attn_interp.train.config import TrainConfig
from attn_interp.train.run import load_run, train_and_evaluate

CFG = FollowupConfig(epsilons=(0.01, 0.05), restarts=2, steps=15)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: flan_noenc with two seeds and han_noenc."""
    root = tmp_path_factory.mktemp("followup_runs")
    for name, n, seed in (("train", 30, 1), ("validation", 8, 2), ("test", 13, 3)):
        write_topic_split(root / f"{name}.jsonl", n, seed)
    data_cfg = local_data_config(root)
    out = {}
    for name, arch, seed in (
        ("flan", "flan_noenc", 1),
        ("flan2", "flan_noenc", 2),
        ("han", "han_noenc", 1),
    ):
        cfg = TrainConfig(
            epochs=1,
            batch_size=8,
            learning_rate=1e-2,
            save_every_steps=0,
            progress=False,
            seed=seed,
        )
        out[name] = str(root / name)
        train_and_evaluate(
            data_cfg, cfg, out[name], arch=arch, model_overrides={"embed_dim": 8}, min_count=1
        )
    return out


def test_outputs_match_a_direct_call_per_document(runs):
    out = evaluate_followups(
        runs["flan"], CFG, other_workdir=runs["flan2"], shard_docs=5, progress=False
    )
    columns, summary = load_followups(out)
    n_docs = 13
    np.testing.assert_array_equal(columns["doc_index"], np.arange(n_docs))
    with open(os.path.join(out, FOLLOWUPS_CSV_FILE)) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_docs
    assert {"tau_gradient", "overlap_leave_one_out_top10pct", "baseline_other_seed_tvd"} <= set(
        rows[0]
    )
    assert {"adv_js_eps0.01", "adv_found_eps0.05"} <= set(rows[0])
    assert summary.documents == n_docs and set(summary.baselines) == {
        "uniform",
        "permuted",
        "other_seed",
    }
    # One document at a time through run_followups gives the same columns.
    run, other = load_run(runs["flan"]), load_run(runs["flan2"])
    test = load_splits(run.data_config).splits["test"]
    corpus = encode_corpus(test, run.vocab, hierarchical=False)
    for i in (0, 11):
        tokens = np.asarray(corpus.docs[list(corpus.doc_index).index(i)], np.int32)[None]
        inputs = run.model.encode(tokens)
        o_inputs = other.model.encode(tokens)
        res = run_followups(
            inputs.values,
            inputs.scores,
            inputs.mask,
            config=CFG,
            affine=AffineParams(*run.model.head_params()),
            doc_ids=np.array([i]),
            other_scores=o_inputs.scores,
        )
        direct = document_columns(res, CFG)
        for key in (
            "tau_gradient",
            "baseline_permuted_tvd",
            "baseline_other_seed_js",
            "adv_js_eps0.01",
        ):
            np.testing.assert_allclose(columns[key][i], direct[key][0], atol=2e-5, err_msg=key)


def test_reuse_and_recompute_follow_the_manifest(runs, capsys):
    out = evaluate_followups(runs["han"], CFG, progress=False)
    stamp = os.path.getmtime(os.path.join(out, "summary.json"))
    assert evaluate_followups(runs["han"], CFG, progress=False) == out
    assert os.path.getmtime(os.path.join(out, "summary.json")) == stamp
    other = dataclasses.replace(CFG, epsilons=(0.02,))
    evaluate_followups(runs["han"], other, progress=False)
    assert "followup_config" in capsys.readouterr().out
    columns, summary = load_followups(out)
    assert [a.epsilon for a in summary.adversary] == [0.02]
    assert "adv_js_eps0.01" not in columns
    assert np.all(np.isnan(columns["tau_gradient"][columns["seq_len"] < 2]))


def test_damaged_or_foreign_shards_are_recomputed_with_the_reason(
    runs, tmp_path, monkeypatch, capsys
):
    """A resumed follow-up run reuses a shard only if its file matches the sha256 recorded in the
    manifest: a shard with one flipped byte, one from a run of other settings and one without a
    recorded sum are recomputed, each with a printed reason; the results equal the first run's."""
    from attn_interp.followups import stage

    out = str(tmp_path / "a")
    kw = {"shard_docs": 5, "progress": False}
    evaluate_followups(runs["flan"], CFG, other_workdir=runs["flan2"], out_dir=out, **kw)
    want, _ = load_followups(out)
    other = evaluate_followups(runs["flan"], CFG, out_dir=str(tmp_path / "b"), **kw)
    folder, foreign = FollowupDir(out), FollowupDir(other)
    paths = [folder.shard_path(s) for s in range(3)]
    with open(paths[0], "r+b") as f:  # one flipped bit in the middle of shard 0
        f.seek(os.path.getsize(paths[0]) // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 1]))
    shutil.copyfile(foreign.shard_path(1), paths[1])  # no other-seed columns
    manifest = folder.manifest()
    del manifest[SHARD_SUMS_KEY][os.path.basename(paths[2])]
    with open(folder.manifest_path, "w") as f:
        json.dump(manifest, f)
    os.remove(folder.summary_path)  # unfinished: the next call resumes from the shards
    calls = []
    real = stage._shard_columns
    monkeypatch.setattr(stage, "_shard_columns", lambda *a: calls.append(a[1:3]) or real(*a))
    capsys.readouterr()
    evaluate_followups(runs["flan"], CFG, other_workdir=runs["flan2"], out_dir=out, **kw)
    assert calls == [(0, 5), (5, 10), (10, 13)]
    assert capsys.readouterr().out.splitlines() == [
        f"followups: {paths[0]} does not match its sha256 in manifest.json: recomputing it",
        f"followups: {paths[1]} does not match its sha256 in manifest.json: recomputing it",
        f"followups: {paths[2]} has no sha256 in manifest.json: recomputing it",
    ]
    got, _ = load_followups(out)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
