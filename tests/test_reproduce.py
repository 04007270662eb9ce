"""`python -m experiments.reproduce --smoke` end to end on a tiny local dataset (no network)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", ATTN_INTERP_CACHE=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "experiments.reproduce", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reproduce")
    data = tmp_path / "tiny.csv"
    write_tiny_dataset(str(data))
    workdir = tmp_path / "work"
    args = [
        f"--workdir={workdir}",
        "--smoke",
        "--dataset=local",
        f"--local_path={data}",
        "--local_name=tiny",  # a local corpus keeps its own name in folders and the report
        f"--cache_dir={tmp_path / 'cache'}",
        "--models=flan_noenc",
        "--min_count=1",
    ]
    first = _run(args, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return workdir, args, first, tmp_path


def test_smoke_run_writes_report_with_recomputed_numbers(smoke_run):
    workdir, _, first, tmp_path = smoke_run
    report_md = workdir / "report" / "report.md"
    assert f"report written: {report_md}" in first.stdout
    for stage in ("dataset statistics", "train flan_noenc", "erasure flan_noenc", "report:"):
        assert stage in first.stdout
    run_dir = workdir / "runs" / "tiny" / "flan_noenc"
    final = json.loads((run_dir / "final.json").read_text())
    with np.load(run_dir / "erasure" / "results.npz") as f:
        seq, top, rand = f["seq_len"], f["single_top_flip"], f["single_rand_flip"]
    assert seq.size <= 40  # smoke: at most 40 erased test documents
    inc = seq > 1
    text = report_md.read_text(encoding="utf-8")
    f_top = 100 * np.mean(top[inc] != -1)
    f_rand = 100 * np.mean(rand[inc] != -1)
    assert f"flips the decision in {f_top:.1f}% of documents" in text
    assert f"a random other item r in {f_rand:.1f}%" in text
    (cached,) = (tmp_path / "cache" / "baselines").iterdir()  # TF-IDF + LR, beside every model
    base = json.loads(cached.read_text())["result"]["test_accuracy"]
    head = text[text.index("| dataset | model | test accuracy %") :].splitlines()[0]
    row = text[text.index(f"| tiny | FLANnoenc | {100 * final['test_accuracy']:.1f} |") :]
    cells = dict(zip(head.split(" | "), row.splitlines()[0].split(" | "), strict=True))
    assert cells["TF-IDF + LR test accuracy %"] == f"{100 * base:.1f}"
    assert "TF-IDF + LR baseline of tiny: test accuracy" in first.stdout
    assert "SMOKE RUN" in text
    figures = os.listdir(workdir / "report" / "figures")
    for stem in ("fig3_js_vs_alpha_attention", "fig4_negative_js_hist", "fig5_removal_frac"):
        assert f"{stem}_flan_noenc.png" in figures and f"{stem}_flan_noenc.pdf" in figures
        assert f"figures/{stem}_flan_noenc.png" in text
    page = (workdir / "report" / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 5  # self-contained: figures inlined
    assert (workdir / "report" / "documents" / "tiny_flan_noenc.html").is_file()
    stats = json.loads((workdir / "dataset_stats" / "tiny.json").read_text())
    assert stats["num_classes"] == 3 and stats["dataset"] == "tiny"
    assert "Classes of tiny: neg, pos, mid." in text  # Table 1: classes as read (first seen)
    assert not (workdir / "runs" / "local").exists()


def test_rerun_skips_finished_stages(smoke_run):
    workdir, args, _, tmp_path = smoke_run
    summary = workdir / "runs" / "tiny" / "flan_noenc" / "erasure" / "summary.json"
    before = summary.stat().st_mtime_ns
    again = _run(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished run found" in again.stdout
    assert "finished results found" in again.stdout
    assert "reusing" in again.stdout and "computing" not in again.stdout
    assert summary.stat().st_mtime_ns == before


def test_results_of_an_older_engine_are_recomputed(smoke_run):
    from attn_interp.erasure.evaluate import RESULTS_REVISION

    workdir, args, _, tmp_path = smoke_run
    manifest = workdir / "runs" / "tiny" / "flan_noenc" / "erasure" / "manifest.json"
    older = json.loads(manifest.read_text())
    older["results_revision"] = RESULTS_REVISION - 1
    manifest.write_text(json.dumps(older))
    again = _run(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"holds results of other settings (results_revision: {RESULTS_REVISION - 1} -> {RESULTS_REVISION}); recomputing"
        in again.stdout
    )
    assert json.loads(manifest.read_text())["results_revision"] == RESULTS_REVISION


def test_unknown_model_is_a_usage_error(tmp_path):
    bad = _run([f"--workdir={tmp_path}", "--models=han_lstm"], tmp_path)
    assert bad.returncode != 0
    assert "han_lstm" in bad.stderr and "flan_noenc" in bad.stderr


def _stage_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[reproduce")]


def test_changed_epochs_or_data_retrain_and_recompute(smoke_run, tmp_path):
    """Another --epochs, then other documents at another --local_path, on an existing workdir:
    every stage made from the old inputs is redone (one line says why) and the report shows only
    the new inputs."""
    import shutil

    old_workdir, args, _, _ = smoke_run
    workdir = tmp_path / "work"
    shutil.copytree(old_workdir, workdir)
    args = [a for a in args if not a.startswith("--workdir")] + [f"--workdir={workdir}"]
    run_dir = workdir / "runs" / "tiny" / "flan_noenc"
    manifest = run_dir / "erasure" / "manifest.json"
    old_run_sha = json.loads(manifest.read_text())["run_sha256"]

    more = _run([*args, "--epochs=2", "--learning_rate=0.01", "--batch_size=16"], tmp_path)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    lines = _stage_lines(more.stdout)
    retrain = [x for x in lines if "retraining" in x]
    assert len(retrain) == 1 and "train.epochs: 1 -> 2" in retrain[0]
    assert any("erasure flan_noenc on tiny: running" in x for x in lines)
    assert json.loads((run_dir / "final.json").read_text())["epochs"] == 2
    train_cfg = json.loads((run_dir / "config.json").read_text())["train"]
    assert (train_cfg["epochs"], train_cfg["learning_rate"], train_cfg["batch_size"]) == (
        2,
        0.01,
        16,
    )
    assert json.loads(manifest.read_text())["run_sha256"] != old_run_sha

    other = tmp_path / "other.csv"
    write_tiny_dataset(str(other), n=120, seed=7)
    args = [a for a in args if not a.startswith("--local_path")] + [f"--local_path={other}"]
    moved = _run([*args, "--epochs=2"], tmp_path)
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    lines = _stage_lines(moved.stdout)
    assert any("dataset statistics" in x and "recomputing" in x for x in lines)
    assert any("retraining" in x and "data_sha256" in x for x in lines)
    assert not any("reusing" in x for x in lines)
    stats = json.loads((workdir / "dataset_stats" / "tiny.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["local_path"] == str(other)
    assert stats["data_fingerprint"]["splits"] == config["data_sha256"]
    final = json.loads((run_dir / "final.json").read_text())
    with np.load(run_dir / "erasure" / "results.npz") as f:
        erased = int(f["seq_len"].size)
    text = (workdir / "report" / "report.md").read_text(encoding="utf-8")
    assert f"| tiny | FLANnoenc | {100 * final['test_accuracy']:.1f} |" in text
    assert f"| tiny | 3 | test | {stats['splits']['test']} |" in text
    assert final["test_documents"] == stats["splits"]["test"]
    assert erased == min(40, stats["splits"]["test"])

    # Erasure results of another trained run (e.g. retrained by hand) are recomputed too.
    stale = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**stale, "run_sha256": "0" * 64}))
    again = _run([*args, "--epochs=2"], tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    lines = _stage_lines(again.stdout)
    assert any("finished run found" in x for x in lines)
    assert any("holds results of other settings (run_sha256: '000" in x for x in lines)
    assert json.loads(manifest.read_text())["run_sha256"] == stale["run_sha256"]


def test_report_covers_every_finished_run_of_the_workdir(smoke_run, tmp_path):
    """A second invocation with another --models adds its run to the report instead of replacing
    the first; each run shows its own settings, the epochs it ran, the documents the training
    caps dropped, and macro-F1 and per-class accuracy beside accuracy."""
    import shutil

    from attn_interp.train.metrics import classification_metrics

    old_workdir, args, _, _ = smoke_run
    workdir = tmp_path / "work"
    shutil.copytree(old_workdir, workdir)
    args = [a for a in args if not a.startswith(("--workdir", "--models"))]
    extra = ["--models=han_noenc", "--max_tokens_per_sentence=7", "--learning_rate=0.005"]
    second = _run([*args, f"--workdir={workdir}", *extra], tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    text = (workdir / "report" / "report.md").read_text(encoding="utf-8")
    finals = {}
    for arch, label in (("flan_noenc", "FLANnoenc"), ("han_noenc", "HANnoenc")):
        run_dir = workdir / "runs" / "tiny" / arch
        final = json.loads((run_dir / "final.json").read_text())
        finals[arch] = final
        acc, f1 = 100 * final["test_accuracy"], 100 * final["test_macro_f1"]
        assert f"| tiny | {label} | {acc:.1f} | {f1:.1f} |" in text
        per_class = final["test_per_class"]
        assert [c["class"] for c in per_class] == ["neg", "pos", "mid"]
        assert sum(c["documents"] for c in per_class) == final["test_documents"]
        with np.load(run_dir / "erasure" / "results.npz") as f:  # every test document erased
            again = classification_metrics(f["label"], f["predicted"], 3)
        assert again.macro_f1 == pytest.approx(final["test_macro_f1"])
        for entry, recall in zip(per_class, again.per_class_accuracy, strict=True):
            if entry["documents"]:
                assert entry["accuracy"] == pytest.approx(recall)
                assert f"| tiny | {label} | {entry['class']} | {entry['documents']} |" in text
    han = finals["han_noenc"]
    dropped = han["train_documents_dropped_by_caps"]
    assert dropped.get("sentence_too_long", 0) > 0
    assert han["train_documents_used"] == han["train_documents"] - sum(dropped.values())
    assert finals["flan_noenc"]["train_documents_dropped_by_caps"] == {}
    rows = [x for x in text.splitlines() if x.startswith("| tiny | HANnoenc | 1 / 1 |")]
    assert len(rows) == 1 and "0.005" in rows[0] and "50 sent. / 7 tok." in rows[0]  # preset + flag
    assert f"| {sum(dropped.values())} | {han['train_documents']} |" in rows[0]
    flan_rows = [x for x in text.splitlines() if x.startswith("| tiny | FLANnoenc | 1 / 1 |")]
    assert len(flan_rows) == 1 and "0.002" in flan_rows[0]
    assert "Test accuracy per class" in text


def test_smoke_run_writes_followup_sections_and_explorer(smoke_run):
    workdir, _, first, _ = smoke_run
    out = workdir / "runs" / "tiny" / "flan_noenc" / "followups"
    summary = json.loads((out / "summary.json").read_text())
    assert "followups flan_noenc on tiny" in first.stdout
    text = (workdir / "report" / "report.md").read_text(encoding="utf-8")
    for heading in ("Rank agreement", "Replacing the attention weights", "Adversarial attention"):
        assert f"## {heading}" in text
    tau = summary["agreement"]["gradient"]["mean_tau"]
    if tau is not None:
        assert f"has mean {tau:.2f}" in text
    explorer = workdir / "report" / "explorer" / "tiny_flan_noenc.html"
    assert "explorer/tiny_flan_noenc.html" in text and explorer.is_file()
