"""`python -m experiments.dataset_stats` on a tiny local dataset: table + final JSON line."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from attn_interp.data import tokenize, tokenize_sentences

_REPO = pathlib.Path(__file__).resolve().parents[1]


def test_dataset_stats_launcher_on_local_files(tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "actor", "boring", "great"]
    rows = []
    for i in range(60):
        n_sent = int(rng.integers(1, 4))
        text = " ".join(" ".join(rng.choice(words, 4)).capitalize() + "." for _ in range(n_sent))
        rows.append({"review": f"Review {i}. " * (i % 2) + text, "stars": int(rng.integers(1, 6))})
    rows.append({"review": "<br />", "stars": 1})  # no tokens: skipped and counted
    rows.append({"review": "   ", "stars": 2})  # empty text: skipped and counted
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, ATTN_INTERP_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.dataset_stats", "--dataset=local",
         f"--local_path={path}", "--local_text_column=review", "--local_label_column=stars",
         "--local_split_fractions=0.5,0.25,0.25", "--min_count=2", "--local_name=reviews"],
        cwd=_REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip().splitlines()
    stats = json.loads(out[-1])
    assert "tokens/doc" in "\n".join(out[:-1])
    assert stats["dataset"] == "reviews"  # --local_name
    assert "Dataset reviews: 5 classes" in out[0] and "classes: 1, 2, 3, 4, 5" in out[2]
    assert stats["num_classes"] == len(stats["class_names"])
    assert stats["class_names"] == sorted(stats["class_names"], key=int)
    assert sum(stats["splits"].values()) == 61  # the blank row is skipped at load time
    assert stats["skipped"]["unsplit"] == {"empty_text": 1}
    assert sum(s.get("no_tokens", 0) for s in stats["skipped"].values()) == 1
    # Reference statistics recomputed here on all kept documents of all splits.
    kept = [r["review"] for r in rows if tokenize(r["review"])]
    n_tok = np.array([len(tokenize(t)) for t in kept])
    n_sent = np.array([len(tokenize_sentences(t)) for t in kept])
    sizes = {
        k: v - stats["skipped"].get(k, {}).get("no_tokens", 0) for k, v in stats["splits"].items()
    }
    mean_tok = sum(stats["tokens_per_doc"][k]["mean"] * n for k, n in sizes.items()) / len(kept)
    mean_sent = sum(stats["sentences_per_doc"][k]["mean"] * n for k, n in sizes.items()) / len(kept)
    multi = sum(stats["multi_sentence_share"][k] * n for k, n in sizes.items()) / len(kept)
    assert abs(mean_tok - n_tok.mean()) < 1e-2
    assert abs(mean_sent - n_sent.mean()) < 1e-2
    assert abs(multi - (n_sent > 1).mean()) < 1e-3


def test_dataset_stats_launcher_reads_a_latin1_folder_layout(tmp_path):
    root = tmp_path / "corpus"
    for split, n in (("train", 20), ("test", 4)):
        for label in ("neg", "pos"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}.txt").write_bytes(f"Très {label} {i}. Fin.".encode("latin-1"))
    env = dict(os.environ, ATTN_INTERP_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.dataset_stats", "--dataset=local",
         f"--local_dir={root}", "--local_encoding=latin-1", "--local_name=corpus",
         "--min_count=1"],
        cwd=_REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["dataset"] == "corpus" and stats["class_names"] == ["neg", "pos"]
    assert stats["splits"]["test"] == 8
    assert stats["splits"]["train"] + stats["splits"]["validation"] == 40
