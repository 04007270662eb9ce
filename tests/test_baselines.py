"""TF-IDF + logistic-regression baseline: C chosen on validation, the keyed cache, the launcher."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from attn_interp import baselines
from attn_interp.data import LoadedDataset, Split

_REPO = pathlib.Path(__file__).resolve().parents[1]
_TOPICS = [["ball", "goal", "team"], ["bread", "soup", "salt"], ["code", "chip", "disk"]]


def _texts(n: int, seed: int, noise: float = 0.0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    texts = []
    for label in labels:
        words = list(rng.choice(_TOPICS[label], 4)) + list(rng.choice(sum(_TOPICS, []), 2))
        if rng.random() < noise:
            words = list(rng.choice(sum(_TOPICS, []), 6))
        texts.append(" ".join(words).capitalize() + ".")
    return texts, labels


def _dataset(seed: int = 0) -> LoadedDataset:
    splits = {
        name: Split(*_texts(n, seed + i, noise=0.3))
        for i, (name, n) in enumerate((("train", 60), ("validation", 30), ("test", 30)))
    }
    return LoadedDataset(name="topics", class_names=("a", "b", "c"), splits=splits)


def test_c_chosen_on_validation_and_test_scored_once():
    ds = _dataset()
    cfg = baselines.TfidfConfig(ngrams=1, min_df=1, c_grid=(0.01, 1.0, 100.0))
    result = baselines.tfidf_baseline(ds, cfg)
    by_c = {float(c): v for c, v in result.validation_by_c.items()}
    best = max(by_c.values())
    assert result.validation_accuracy == best
    assert result.c == min(c for c, v in by_c.items() if v == best)  # ties: the smaller C
    assert result.features == 10 and result.seconds > 0  # 9 words and "."
    # Reference: the same pipeline, assembled here, at the chosen C.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(
        tokenizer=str.split, lowercase=True, token_pattern=None, sublinear_tf=True
    )
    clean = {k: [t.replace(".", " .").lower() for t in s.texts] for k, s in ds.splits.items()}
    x = vec.fit_transform(clean["train"])
    lr = LogisticRegression(C=result.c, solver="saga", max_iter=1000, random_state=0)
    lr.fit(x, ds.splits["train"].labels)
    want = np.mean(lr.predict(vec.transform(clean["test"])) == ds.splits["test"].labels)
    assert result.test_accuracy == pytest.approx(want)
    assert 0.6 < result.test_accuracy <= 1.0  # the topics are learnable despite the noise


def test_cache_reuses_and_recomputes_when_data_or_settings_change(tmp_path, monkeypatch):
    calls = []
    real = baselines.tfidf_baseline

    def counting(ds, cfg):
        calls.append(ds.splits["train"].texts[0])
        return real(ds, cfg)

    monkeypatch.setattr(baselines, "tfidf_baseline", counting)
    cfg = baselines.TfidfConfig(ngrams=1, min_df=1, c_grid=(1.0,))
    first = baselines.cached_tfidf_baseline(_dataset(), tmp_path, cfg)
    assert baselines.cached_tfidf_baseline(_dataset(), tmp_path, cfg) == first
    assert len(calls) == 1
    changed = _dataset()
    changed.splits["test"].labels[0] = (changed.splits["test"].labels[0] + 1) % 3
    baselines.cached_tfidf_baseline(changed, tmp_path, cfg)
    assert len(calls) == 2  # a test label changed: another fingerprint
    baselines.cached_tfidf_baseline(_dataset(), tmp_path, baselines.TfidfConfig(c_grid=(1.0,)))
    assert len(calls) == 3
    assert len(list((tmp_path / "baselines").iterdir())) == 3
    # A file whose stored record is not the wanted one (hand-copied, corrupted) is recomputed.
    path = baselines.cache_file(tmp_path, "topics", baselines.baseline_record(_dataset(), cfg))
    stored = json.loads(open(path).read())
    stored["record"]["data"] = "0" * 64
    with open(path, "w") as f:
        json.dump(stored, f)
    with open(
        baselines.cache_file(tmp_path, "topics", baselines.baseline_record(changed, cfg)), "w"
    ) as f:
        f.write("{not json")
    for ds in (_dataset(), changed):
        assert baselines.cached_tfidf_baseline(ds, tmp_path, cfg).test_accuracy > 0
    assert len(calls) == 5


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert baselines.sklearn_version() is None
    with pytest.raises(ImportError, match=r"\.\[baseline\]"):
        baselines.tfidf_baseline(_dataset())


def test_config_rejects_bad_values():
    for bad in ({"ngrams": 0}, {"min_df": 0}, {"c_grid": ()}, {"c_grid": (1.0, -1.0)}):
        with pytest.raises(ValueError, match="TfidfConfig"):
            baselines.TfidfConfig(**bad)


def test_launcher_prints_table_and_json(tmp_path):
    rows = []
    for split, n, seed in (("train", 60, 0), ("validation", 30, 1), ("test", 30, 2)):
        texts, labels = _texts(n, seed)
        path = tmp_path / f"{split}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"text": t, "label": int(y)}) + "\n"
                for t, y in zip(texts, labels, strict=True)
            )
        )
        rows.append(f"--local_{split}={path}")
    env = dict(os.environ, ATTN_INTERP_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "experiments.baseline_tfidf", "--dataset=local", *rows,
           "--local_name=topics", "--min_df=1", "--c_grid=1,10"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=_REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["runs"][0]["dataset"] == "topics" and out["runs"][0]["test_accuracy"] == 1.0
    assert "| topics | 100.0% |" in "\n".join(lines[:-1])
    assert len(list((tmp_path / "cache" / "baselines").iterdir())) == 1
