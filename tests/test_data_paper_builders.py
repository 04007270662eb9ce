"""The paper's four dataset builders on their dummy_data/ fixtures, the split recipes, the readers
and the training-cap presets. Nothing is downloaded."""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from attn_interp.data import (
    BatchConfig,
    DataConfig,
    DataFormatError,
    apply_training_caps,
    encode_corpus,
    load_splits,
    paper_batch_config,
)
from attn_interp.data.paper import formats, splits
from attn_interp.data.paper.loaders import PAPER_BUILDERS, make_paper_builder
from attn_interp.data.vocabulary import Vocabulary

_PAPER = Path(splits.__file__).parent
CASES = [
    ("yahoo_answers", "zhang_csv", "zhang_csv"),
    ("yahoo_answers", "original_tsv", "original_tsv"),
    ("imdb_10class", "imdb_json", "imdb_json"),
    ("imdb_10class", "tang", "tang_sssss"),
    ("yelp_5class", "zhang_csv", "zhang_csv"),
    ("yelp_5class", "review_json", "yelp_review_json"),
    ("amazon_5class", "zhang_csv", "zhang_csv"),
    ("amazon_5class", "original_tsv", "original_tsv_traindev"),
]


def _cfg(tmp_path, dataset, manual, **kw):
    return DataConfig(dataset=dataset, data_dir=str(tmp_path / "tfds"),
                      cache_dir=str(tmp_path / "cache"), manual_dir=str(manual), **kw)  # fmt: skip


def _raw_rows(name, folder):
    """Independent reading of the dummy files: {file name: [(text, label id)]} (blank kept)."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = [(" ".join(r[1:]).replace("\\n", " "), int(r[0]) - 1) for r in csv.reader(f)]
        elif path.suffix == ".tsv":
            lines = path.read_text().splitlines()
            head = lines[0].split("\t")
            ti, li = head.index("tokens"), head.index("category")
            names = PAPER_BUILDERS[name].CLASS_NAMES
            rows = []
            for line in lines[1:]:
                f = line.split("\t")
                lab = f[li]
                rows.append((f[ti], names.index(lab) if lab in names else int(lab) - 1))
        elif path.name == "data.json":
            rows = [(o["review"], o["rating"] - 1) for o in json.loads(path.read_text())]
        elif path.name == "review.json":
            objs = [json.loads(line) for line in path.read_text().splitlines()]
            rows = [(o["text"], int(o["stars"]) - 1) for o in objs]
        elif path.name.endswith(".txt.ss"):
            rows = [
                (f[3], int(f[2]) - 1)
                for f in (line.split("\t\t") for line in path.read_text().splitlines())
            ]
        else:
            continue
        out[path.name] = rows
    return out


def _words(text):
    return " ".join(text.replace("<sssss>", " ").split())


@pytest.mark.parametrize(("name", "folder", "fmt"), CASES)
def test_builder_on_dummy_data(tmp_path, name, folder, fmt):
    manual = _PAPER / name / "dummy_data" / folder
    ds = load_splits(_cfg(tmp_path, f"{name}/dummy", manual))
    cls = PAPER_BUILDERS[name]
    assert ds.class_names == cls.CLASS_NAMES and ds.source.endswith(f"({fmt})")
    raw = _raw_rows(name, manual)
    all_raw = [r for rows in raw.values() for r in rows]
    label_of = {_words(t): y for t, y in all_raw}
    seen = set()
    for split in ("train", "validation", "test"):
        s = ds.splits[split]
        assert len(s) > 0 and s.labels.dtype == np.int32
        for text, label in zip(s.texts, s.labels, strict=True):
            assert "\\n" not in text and "<sssss>" not in text and text.strip()
            assert label_of[_words(text)] == label  # text kept, label mapped from 1-based
            assert _words(text) not in seen  # splits disjoint
            seen.add(_words(text))
    nonblank = sum(1 for t, _ in all_raw if t.strip())
    total = sum(len(s) for s in ds.splits.values())
    recipe = make_paper_builder(name, DataConfig(), "dummy").builder_config.recipe
    roles = {r for r, _ in next(la for la in cls.LAYOUTS if la.format == fmt).files}
    if roles == {"pool"} and recipe.test_per_class is not None:
        counts = np.bincount(ds.splits["test"].labels, minlength=len(cls.CLASS_NAMES))
        assert counts.tolist() == [recipe.test_per_class] * len(cls.CLASS_NAMES)
        td = np.concatenate([ds.splits["train"].labels, ds.splits["validation"].labels])
        assert np.bincount(td).tolist() == [recipe.traindev_per_class] * len(cls.CLASS_NAMES)
        if not recipe.dev_by_coin:
            assert len(ds.splits["validation"]) == round(recipe.dev_fraction * td.size)
    elif roles == {"pool"}:
        n_test = round(recipe.test_fraction * nonblank)
        assert len(ds.splits["test"]) == n_test and total == nonblank
        assert len(ds.splits["validation"]) == round(recipe.dev_fraction * (nonblank - n_test))
    else:  # files used as given / test file as given: every non-blank row is kept
        assert total == nonblank
        test_file = [k for k in raw if "test" in k]
        assert len(ds.splits["test"]) == sum(1 for t, _ in raw[test_file[0]] if t.strip())


def test_yahoo_paper_split_filters_and_is_deterministic(tmp_path):
    manual = _PAPER / "yahoo_answers" / "dummy_data" / "zhang_csv"
    a = load_splits(_cfg(tmp_path / "a", "yahoo_answers/dummy", manual))
    b = load_splits(_cfg(tmp_path / "b", "yahoo_answers/dummy", manual))
    assert all(a.splits[k].texts == b.splits[k].texts for k in a.splits)
    long_in_test = [t for t in a.splits["test"].texts if "long" in t]
    in_traindev = [t for k in ("train", "validation") for t in a.splits[k].texts if "long" in t]
    assert in_traindev == []  # 10 sentences > the dummy recipe's 8: never in train+dev
    assert a.skipped["unsplit"]["empty_text"] == 1
    assert a.skipped["unsplit"]["over_traindev_filter"] == 1 - len(long_in_test)
    builder = make_paper_builder("yahoo_answers", DataConfig(data_dir=str(tmp_path / "a" / "tfds")))
    assert builder.builder_config.recipe.test_per_class == 5000  # default config: the paper's


def test_missing_or_wrong_files_give_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_splits(_cfg(tmp_path, "yahoo_answers", empty))
    for needed in ("train.csv", "test.csv", "*_train.tsv", "*_dev.tsv", "manual_dir", "yahoo"):
        assert needed in str(err.value)
    wrong = tmp_path / "wrong"  # Amazon's 3-column CSVs placed for Yahoo (4 columns)
    shutil.copytree(_PAPER / "amazon_5class" / "dummy_data" / "zhang_csv", wrong)
    with pytest.raises(DataFormatError, match=r"train\.csv:1: 3 CSV fields.*has 4"):
        load_splits(_cfg(tmp_path, "yahoo_answers/dummy", wrong))
    bad = tmp_path / "bad"
    shutil.copytree(_PAPER / "yelp_5class" / "dummy_data" / "zhang_csv", bad)
    with open(bad / "test.csv", "a") as f:
        f.write('"6","six stars is not a class"\n')
    with pytest.raises(DataFormatError, match=r"test\.csv:11: label '6' is not one of the 5"):
        load_splits(_cfg(tmp_path, "yelp_5class/dummy", bad))
    ds = load_splits(_cfg(tmp_path / "skip", "yelp_5class/dummy", bad, bad_rows="skip"))
    assert ds.skipped["test"] == {"unknown_label": 1} and len(ds.splits["test"]) == 10


def test_assign_splits_class_balanced_pool():
    rng = np.random.default_rng(0)
    n, c = 600, 4
    labels = rng.integers(0, c, n)
    nonempty = rng.random(n) > 0.1
    eligible = rng.random(n) > 0.2
    recipe = splits.SplitRecipe(seed=3, test_per_class=20, traindev_per_class=60, dev_fraction=0.1)
    out = splits.assign_splits(labels, nonempty, eligible, c, recipe)
    assert set(np.unique(out)) <= {-1, 0, 1, 2}
    assert (np.bincount(labels[out == 2], minlength=c) == 20).all()
    td = (out == 0) | (out == 1)
    assert (np.bincount(labels[td], minlength=c) == 60).all()
    assert nonempty[out >= 0].all() and eligible[td].all()
    assert (out == 1).sum() == round(0.1 * td.sum())
    again = splits.assign_splits(labels, nonempty, eligible, c, recipe)
    other = splits.assign_splits(labels, nonempty, eligible, c, dataclasses.replace(recipe, seed=4))
    assert (again == out).all() and (other != out).any()
    # Test rows need not pass the train+dev filter, but they must be non-empty.
    assert (~eligible[out == 2]).any()
    with pytest.raises(
        ValueError, match="class 'c0' has [0-9]+ documents left .* fewer than the 500 per class"
    ):
        splits.assign_splits(labels, nonempty, None, c,
                             dataclasses.replace(recipe, traindev_per_class=500),
                             class_names=("c0", "c1", "c2", "c3"))  # fmt: skip


def test_assign_splits_fractions_and_coin():
    rng = np.random.default_rng(1)
    n = 2000
    labels = rng.integers(0, 10, n)
    nonempty = np.ones(n, dtype=bool)
    nonempty[:7] = False
    imdb = splits.SplitRecipe(seed=0, test_fraction=0.1, dev_fraction=1 / 9)
    out = splits.assign_splits(labels, nonempty, None, 10, imdb)
    sizes = np.bincount(out[out >= 0], minlength=3)
    usable = n - 7
    assert sizes[2] == round(0.1 * usable) and sizes[1] == round((usable - sizes[2]) / 9)
    assert sizes.sum() == usable and (out[:7] == -1).all()
    coin = splits.split_traindev(
        20000, splits.SplitRecipe(dev_by_coin=True), np.random.default_rng(0)
    )
    assert abs(coin.mean() - 0.1) < 0.01
    ref = np.random.default_rng(0).random(20000) < 0.1  # independent coin per row, in file order
    assert (coin == ref).all()


def test_readers_join_fields_and_labels(tmp_path):
    assert (
        formats.join_fields(["Title?", "", "line one\\nline two "]) == "Title?\nline one\nline two"
    )
    assert [formats.numeric_label(v) for v in (5, 5.0, " 5 ", "5.0", "x", 2.5)] == [
        "5", "5", "5", "5", "x", "2.5"]  # fmt: skip
    path = tmp_path / "imdb.test.txt.ss"
    path.write_text("u\t\tp\t\t7\t\tgood film . <sssss> bad end !\nbroken line\n")
    from attn_interp.data.readers import BadRowPolicy, RawRows

    rows = RawRows(str(path))
    got = list(formats.read_tang(path, BadRowPolicy("skip", rows)))
    assert got == [(1, "good film .\nbad end !", "7")] and rows.skipped == {"malformed_row": 1}
    csv_path = tmp_path / "train.csv"
    csv_path.write_text('"2","He said ""hi""","a\\nb"\n')
    rows = RawRows(str(csv_path))
    got = list(formats.read_zhang_csv(csv_path, 3, BadRowPolicy("error", rows)))
    assert got == [(1, 'He said "hi"\na\nb', "2")]


def test_paper_training_caps_presets_drop_only_long_training_docs():
    cfg = paper_batch_config("amazon_5class/dummy", BatchConfig(batch_size=4))
    assert cfg.batch_size == 4
    caps = splits.PAPER_TRAINING_CAPS["amazon_5class"]
    assert (cfg.max_sentences_per_doc, cfg.max_tokens_per_sentence) == (
        caps.max_sentences_per_doc, caps.max_tokens_per_sentence)  # fmt: skip
    assert paper_batch_config("imdb_10class").max_sentences_per_doc is None
    texts = ["Fine. " * 3, "Many. " * 20, ("word " * 140) + "."]
    from attn_interp.data import Split

    corpus = encode_corpus(Split(texts, np.zeros(3, np.int32)), Vocabulary.build([["fine"]], 1),
                           hierarchical=True)  # fmt: skip
    kept, dropped = apply_training_caps(corpus, cfg)
    assert len(kept) == 1 and dropped == {"too_many_sentences": 1, "sentence_too_long": 1}
    with pytest.raises(ValueError, match="no paper training caps for 'sst'"):
        paper_batch_config("sst")
