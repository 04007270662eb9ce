"""The `local` loader's sources (issue 14.14): validation carved as 10% of a train file, file
encodings, and the folder layout (one text file per document, label = folder name)."""

import dataclasses
import json

import pytest

from attn_interp.data import DataConfig, DataFormatError, UnusableDataError, load_splits
from attn_interp.data.local import hash_unit_interval


def _write_rows(path, rows, encoding="utf-8"):
    path.write_bytes(("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows)).encode(encoding))


def test_validation_is_ten_percent_of_the_train_file_by_text_hash(tmp_path):
    rows = [(f"document number {i} about {'ab'[i % 2]}", "ab"[i % 2]) for i in range(400)]
    _write_rows(tmp_path / "train.csv", rows)
    _write_rows(tmp_path / "test.csv", rows[:10])
    cfg = DataConfig(dataset="local", local_train=str(tmp_path / "train.csv"),
                     local_test=str(tmp_path / "test.csv"))  # fmt: skip
    ds = load_splits(cfg)
    u = {t: hash_unit_interval(t) for t, _ in rows}
    # Reference: validation is the documents whose hash lies in the top 10% of [0, 1).
    assert set(ds.splits["validation"].texts) == {t for t, v in u.items() if v >= 0.9}
    assert set(ds.splits["train"].texts) == {t for t, v in u.items() if v < 0.9}
    assert any(8 / 9 <= v < 0.9 for v in u.values())  # the old 1/9 rule would differ here
    assert "validation: 10% of train by text hash" in ds.source
    other = load_splits(dataclasses.replace(cfg, local_split_fractions=(0.7, 0.2, 0.1)))
    assert set(other.splits["validation"].texts) == {t for t, v in u.items() if v >= 0.8}


LATIN1_ROWS = [("café au lait", "food"), ("naïve façade", "art"), ("crème brûlée", "food")]


@pytest.mark.parametrize("ext", ["csv", "jsonl", "json"])
def test_latin1_file_reads_with_local_encoding_and_the_error_suggests_it(tmp_path, ext):
    path = tmp_path / f"latin1.{ext}"
    if ext == "csv":
        _write_rows(path, LATIN1_ROWS, "latin-1")
    elif ext == "jsonl":
        lines = [json.dumps({"text": t, "label": y}, ensure_ascii=False) for t, y in LATIN1_ROWS]
        path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    else:
        objs = [{"text": t, "label": y} for t, y in LATIN1_ROWS]
        path.write_bytes(json.dumps(objs, ensure_ascii=False).encode("latin-1"))
    cfg = DataConfig(dataset="local", local_train=str(path), local_validation=str(path),
                     local_test=str(path))  # fmt: skip
    with pytest.raises(DataFormatError, match=r"(?i)invalid UTF-8.*--local_encoding") as err:
        load_splits(cfg)
    assert "drop every row" in str(err.value)
    if ext != "json":  # one undecodable array has no rows to skip
        with pytest.raises(UnusableDataError, match=r"bad_utf8.*--local_encoding"):
            load_splits(dataclasses.replace(cfg, bad_rows="skip"))
    ds = load_splits(dataclasses.replace(cfg, local_encoding="latin-1"))
    assert ds.splits["train"].texts == [t for t, _ in LATIN1_ROWS]
    assert ds.class_names == ("food", "art")


def test_utf8_byte_order_mark_and_unknown_encoding(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "text,label\nüber,x\nzwei,y\n".encode())
    ds = load_splits(DataConfig(dataset="local", local_train=str(path),
                                local_validation=str(path), local_test=str(path)))  # fmt: skip
    assert ds.splits["train"].texts == ["über", "zwei"]
    with pytest.raises(ValueError, match="unknown local_encoding 'klingon'"):
        DataConfig(local_encoding="klingon")


def _tree(root, files: dict[str, bytes | str]):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _docs(split, label, n):
    return {
        f"{split}/{label}/{i}_{label}.txt": f"{split} {label} review number {i}." for i in range(n)
    }


def test_folder_layout_with_train_and_test_folders(tmp_path):
    root = tmp_path / "aclImdb"
    _tree(root, {**_docs("train", "pos", 30), **_docs("train", "neg", 30),
                 **_docs("test", "neg", 4), **_docs("test", "pos", 5),
                 **_docs("train", "unsup", 7),  # unlabelled, left out with local_skip_folders
                 "train/labeledBow.feat": "0:1 2:3", "train/pos/.hidden": "x",
                 "test/neg/latin.txt": "très mauvais".encode("latin-1")})  # fmt: skip
    cfg = DataConfig(dataset="local", local_dir=str(root), local_skip_folders="unsup",
                     local_encoding="latin-1")  # fmt: skip
    ds = load_splits(cfg)
    assert ds.class_names == ("neg", "pos")  # sorted folder names
    assert len(ds.splits["test"]) == 10 and "très mauvais" in ds.splits["test"].texts
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 60
    for t in ds.splits["validation"].texts:  # carved: 10% of train by text hash
        assert hash_unit_interval(t) >= 0.9
    test = ds.splits["test"]
    assert all(
        ds.class_names[y] in t
        for t, y in zip(test.texts, test.labels, strict=True)
        if "review" in t
    )
    with pytest.raises(DataFormatError, match=r"test/neg/latin\.txt: invalid UTF-8.*--local_enc"):
        load_splits(dataclasses.replace(cfg, local_encoding="utf-8"))
    assert "unsup" in load_splits(dataclasses.replace(cfg, local_skip_folders="")).class_names
    _tree(root, _docs("test", "mixed", 1))
    with pytest.raises(DataFormatError, match=r"mixed/0_mixed\.txt: label 'mixed' never occurs"):
        load_splits(cfg)
    (root / "test" / "mixed" / "0_mixed.txt").unlink()
    (root / "test" / "mixed").rmdir()
    (root / "dev" / "pos").mkdir(parents=True)
    _tree(root, _docs("dev", "pos", 2))
    given = load_splits(cfg)
    assert sorted(given.splits["validation"].texts) == [
        f"dev pos review number {i}." for i in (0, 1)
    ]
    assert len(given.splits["train"]) == 60


def test_folder_layout_one_pool_is_hash_split_and_errors_are_clear(tmp_path):
    root = tmp_path / "news"
    _tree(root, {f"{label}/{i}": f"post {i} in {label}" for label in ("sci.space", "rec.autos")
                 for i in range(40)})  # fmt: skip
    ds = load_splits(DataConfig(dataset="local", local_dir=str(root), local_name="news"))
    assert ds.class_names == ("rec.autos", "sci.space") and ds.name == "news"
    for k, name in enumerate(("train", "validation", "test")):
        lo, hi = (0.0, 0.8, 0.9, 1.0)[k : k + 2]
        assert all(lo <= hash_unit_interval(t) < hi for t in ds.splits[name].texts)
    assert sum(len(s) for s in ds.splits.values()) == 80
    _tree(tmp_path / "half", _docs("train", "a", 2))
    with pytest.raises(DataFormatError, match="has a train folder but no test folder"):
        load_splits(DataConfig(dataset="local", local_dir=str(tmp_path / "half")))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_splits(DataConfig(dataset="local", local_dir=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="give one of local_path"):
        load_splits(DataConfig(dataset="local", local_dir=str(root), local_path="x.csv"))
