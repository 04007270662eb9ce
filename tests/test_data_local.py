"""The `local` loader's label hygiene and the checks run before training (issue 14.5)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from attn_interp.data import (
    BatchConfig,
    DataConfig,
    DataFormatError,
    LoadedDataset,
    Split,
    UnusableDataError,
    Vocabulary,
    encode_corpus,
    load_splits,
    normalize_label,
    validate_for_training,
)
from attn_interp.data.local import hash_unit_interval


def _given_splits(tmp_path, train: str, test: str = "text,label\nsome test,a\n", ext="csv"):
    (tmp_path / f"train.{ext}").write_text(train)
    (tmp_path / f"test.{ext}").write_text(test)
    return DataConfig(
        dataset="local",
        local_train=str(tmp_path / f"train.{ext}"),
        local_validation=str(tmp_path / f"train.{ext}"),
        local_test=str(tmp_path / f"test.{ext}"),
    )


@pytest.mark.parametrize(
    ("ext", "train", "line"),
    [
        ("csv", "text,label\nfirst doc,a\nsecond doc,\nthird doc,b\n", 3),
        ("csv", 'text,label\nfirst doc,a\nthird doc,b\n"quoted, doc","  "\n', 4),
        ("tsv", "text\tlabel\nfirst doc\ta\nthird doc\tb\nsecond doc\t \n", 4),
        ("jsonl", '{"text": "first doc", "label": "a"}\n{"text": "x y", "label": ""}\n', 2),
    ],
)
def test_blank_label_is_a_line_numbered_bad_row_or_a_counted_skip(tmp_path, ext, train, line):
    test = {"csv": "text,label\nt,a\n", "tsv": "text\tlabel\nt\ta\n"}.get(
        ext, '{"text": "t", "label": "a"}\n'
    )
    cfg = _given_splits(tmp_path, train, test, ext)
    with pytest.raises(DataFormatError, match=rf"train\.{ext}:{line}: blank label"):
        load_splits(cfg)
    ds = load_splits(dataclasses.replace(cfg, bad_rows="skip"))
    assert "" not in ds.class_names
    assert ds.skipped["train"] == {"blank_label": 1}
    header = 0 if ext == "jsonl" else 1
    assert len(ds.splits["train"]) == train.count("\n") - header - 1


def test_equal_numeric_labels_are_one_class_with_a_readable_name(tmp_path):
    labels = [1, "1", 1.0, "1.0", " 1 ", "+1", "2.0", "2", 2, "2.50", 2.5, "10", 1e1, "0.0", -0.0]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i}", "label": y}) + "\n" for i, y in
                            enumerate(labels)))  # fmt: skip
    cfg = DataConfig(dataset="local", local_train=str(path), local_validation=str(path),
                     local_test=str(path))  # fmt: skip
    ds = load_splits(cfg)
    assert ds.class_names == ("0", "1", "2", "2.5", "10")  # numeric order, canonical names
    names = [ds.class_names[c] for c in ds.splits["train"].labels]
    assert names == ["1"] * 6 + ["2"] * 3 + ["2.5"] * 2 + ["10"] * 2 + ["0"] * 2
    # Text labels are only stripped; odd numerals stay as written.
    assert normalize_label(" pos ") == "pos" and normalize_label("1_0") == "1_0"
    assert normalize_label("nan") == "nan" and normalize_label(True) == "true"
    assert normalize_label("1e3") == "1000" and normalize_label("007") == "7"


def _dataset(labels: dict[str, list[int]], texts=None, names=("a", "b")) -> LoadedDataset:
    splits = {
        k: Split((texts or {}).get(k) or [f"{k} doc {i}" for i in range(len(v))], np.array(v))
        for k, v in labels.items()
    }
    return LoadedDataset("toy", names, splits, source="local:toy.csv")


def test_validate_refuses_one_class_and_empty_splits_with_what_to_change():
    ok = _dataset({"train": [0, 1, 0], "validation": [1], "test": [0]})
    validate_for_training(ok)
    with pytest.raises(UnusableDataError, match=r"single class \('a'\).*local_label_column"):
        validate_for_training(_dataset({"train": [0, 0], "validation": [0], "test": [0]}))
    with pytest.raises(
        UnusableDataError, match=r"validation split has no usable document.*local_split_fractions"
    ):
        validate_for_training(_dataset({"train": [0, 1], "validation": [], "test": [1]}))
    no_test = _dataset({"train": [0, 1], "validation": [1]})
    with pytest.raises(UnusableDataError, match="test split has no usable document"):
        validate_for_training(no_test)


def test_validate_counts_documents_with_tokens_and_under_the_training_caps():
    ds = _dataset(
        {"train": [0, 1], "validation": [1], "test": [0, 1]},
        texts={
            "test": ["<br />", "<p></p>"],
            "train": ["One. Two. Three.", "Alpha beta. Gamma delta. Epsilon zeta."],
        },
    )
    vocab = Vocabulary.build([["one", "two"]], min_count=1)
    corpora = {k: encode_corpus(v, vocab, hierarchical=True) for k, v in ds.splits.items()}
    validate_for_training(ds)  # loaded counts alone look fine
    with pytest.raises(UnusableDataError, match=r"test split.*2 of 2 without tokens") as err:
        validate_for_training(ds, corpora)
    assert "train" not in str(err.value).split("cannot be trained on:")[1].split(".")[0]
    corpora["test"] = corpora["train"]
    capped = BatchConfig(max_sentences_per_doc=2)
    with pytest.raises(UnusableDataError, match=r"train split.*2 over the training caps"):
        validate_for_training(ds, corpora, capped)
    validate_for_training(ds, corpora, BatchConfig(max_sentences_per_doc=3))


def test_one_document_dataset_is_refused_before_training(tmp_path):
    from attn_interp.train.config import TrainConfig
    from attn_interp.train.run import train_and_evaluate

    # A document the hash split puts in train (validation and test stay empty).
    text = next(f"document {i}" for i in range(100) if hash_unit_interval(f"document {i}") < 0.8)
    path = tmp_path / "one.csv"
    path.write_text(f"text,label\n{text},x\n")
    cfg = DataConfig(dataset="local", local_path=str(path))
    workdir = tmp_path / "run"
    with pytest.raises(UnusableDataError, match="no usable document") as err:
        train_and_evaluate(cfg, TrainConfig(epochs=1), str(workdir), arch="flan_noenc")
    assert "single class ('x')" in str(err.value)
    assert not os.path.exists(workdir / "checkpoints") and not os.path.exists(
        workdir / "vocab.json"
    )


def test_local_name_names_the_corpus_and_is_checked(tmp_path):
    path = tmp_path / "complaints.csv"
    path.write_text("text,label\n" + "".join(f"complaint {i},{'ab'[i % 2]}\n" for i in range(30)))
    cfg = DataConfig(dataset="local", local_path=str(path), local_name="cfpb")
    assert cfg.corpus_name == "cfpb" and load_splits(cfg).name == "cfpb"
    assert DataConfig(dataset="local").corpus_name == "local"
    assert dataclasses.replace(cfg, dataset="imdb_50k").corpus_name == "imdb_50k"
    for bad in ("", "a/b", "../up", ".hidden", "two words"):
        with pytest.raises(ValueError, match="local_name must be a folder-safe name"):
            DataConfig(dataset="local", local_name=bad)
    with pytest.raises(ValueError, match="'imdb_50k' is the name of a registered dataset"):
        load_splits(dataclasses.replace(cfg, local_name="imdb_50k"))


def test_table1_names_each_corpus_and_its_classes():
    from attn_interp.analysis import dataset_table

    split = {"train": {"mean": 3.0, "sd": 1.0}}
    stats = [
        {"dataset": name, "num_classes": len(classes), "class_names": classes,
         "splits": {"train": 5}, "tokens_per_doc": split, "sentences_per_doc": split,
         "multi_sentence_share": {"train": 0.5}}
        for name, classes in (("cfpb", ["Mortgage", "Debt collection"]), ("other", ["1", "2"]))
    ]  # fmt: skip
    table = dataset_table(stats)
    assert [r["dataset"] for r in table.as_dicts()] == ["cfpb", "other"]
    assert "Classes of cfpb: Mortgage, Debt collection. Classes of other: 1, 2." in table.note


def test_run_folder_written_before_a_new_data_field_still_resumes(tmp_path):
    from attn_interp.run_dirs import RunDir, RunFolderError
    from attn_interp.train.serialize import config_to_json

    record = {"data": config_to_json(DataConfig(dataset="local", local_path="x.csv")), "k": 1}
    old = json.loads(json.dumps(record))
    del old["data"]["local_name"]  # written by a version without the field
    (tmp_path / "config.json").write_text(json.dumps(old))
    RunDir(str(tmp_path)).check_same(record)  # the missing field reads as its default
    renamed = {**record, "data": {**record["data"], "local_name": "cfpb"}}
    with pytest.raises(RunFolderError, match="data.local_name: 'local' -> 'cfpb'"):
        RunDir(str(tmp_path)).check_same(renamed)
