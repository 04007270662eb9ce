"""word2vec on the corpus: sentences, the keyed cache, determinism, the initialisation mapping."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

from attn_interp.data import LoadedDataset, Split, Vocabulary
from attn_interp.embeddings import (
    GensimTrainer,
    Word2VecConfig,
    WordVectors,
    cache_path,
    cached_vectors,
    corpus_sentences,
    word2vec_matrix,
)
from attn_interp.models.word_vectors import embedding_matrix

DIM = 6
TEXTS = {
    "train": ["The cat sat. The dog ran!", "A cat and a dog. Zebra once."],
    "validation": ["The dog sat."],
    "test": ["Secret test words only."],
}


def _dataset(texts=TEXTS) -> LoadedDataset:
    splits = {k: Split(list(v), np.zeros(len(v), np.int32)) for k, v in texts.items()}
    return LoadedDataset(name="tiny", class_names=("a",), splits=splits)


VOCAB = Vocabulary(["the", "cat", "sat", ".", "dog", "ran", "!", "a", "and"])


class FakeTrainer:
    """Vectors that encode each word's position in a sorted word list; counts its calls."""

    revision = "fake 1"

    def __init__(self):
        self.calls = []

    def __call__(self, sentences, cfg):
        self.calls.append(sentences)
        words = sorted({w for s in sentences for w in s})
        vectors = np.arange(len(words) * cfg.dim, dtype=np.float32).reshape(len(words), cfg.dim)
        return WordVectors(tuple(words), vectors + 1.0)


def test_corpus_sentences_use_vocabulary_words_and_unk():
    cfg = Word2VecConfig(dim=DIM)
    sentences = corpus_sentences(_dataset(), VOCAB, cfg, ["Extra cat text."])
    assert ["the", "cat", "sat", "."] in sentences
    assert ["<unk>", "once", "."] not in sentences and ["<unk>", "<unk>", "."] in sentences
    assert ["<unk>", "cat", "<unk>", "."] == sentences[-1]  # the extra corpus comes last
    flat = {w for s in sentences for w in s}
    assert "secret" not in flat and "test" not in flat  # the test split is never used
    assert flat <= {*VOCAB.words, "<unk>"}
    train_only = corpus_sentences(_dataset(), VOCAB, dataclasses.replace(cfg, splits=("train",)))
    assert len(train_only) == len(sentences) - 2
    with pytest.raises(ValueError, match="no split"):
        corpus_sentences(_dataset(), VOCAB, dataclasses.replace(cfg, splits=("dev",)))


def test_embedding_matrix_maps_row_i_to_word_i():
    rng = np.random.default_rng(0)
    words = ["<pad>", "b", "a", "missing", "zero", "<unk>"]
    vectors = {w: rng.normal(size=DIM) for w in ("a", "b", "<unk>", "<pad>", "unused")}
    vectors["zero"] = np.zeros(DIM)
    m = embedding_matrix(words, vectors, DIM, seed=3)
    assert m.shape == (6, DIM) and m.dtype == np.float32
    assert np.all(m[0] == 0.0)  # padding stays zero even though "<pad>" has a vector
    for i in (1, 2, 5):
        v = vectors[words[i]]
        np.testing.assert_allclose(m[i], v / np.linalg.norm(v), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(m[3:5], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(m, embedding_matrix(words, vectors, DIM, seed=3))
    assert not np.allclose(m[3], embedding_matrix(words, vectors, DIM, seed=4)[3])
    with pytest.raises(ValueError, match="not 6"):
        embedding_matrix(words, {"a": np.ones(DIM + 1)}, DIM)


def test_word2vec_matrix_initialises_vocabulary_rows(tmp_path):
    trainer = FakeTrainer()
    cfg = Word2VecConfig(dim=DIM)
    matrix, cached = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=trainer)
    assert matrix.shape == (len(VOCAB), DIM) and not cached.reused
    vectors = cached.vectors.as_dict()
    assert np.all(matrix[0] == 0.0)
    for i in range(1, len(VOCAB)):
        word = VOCAB.token(i)
        v = vectors[word]
        np.testing.assert_allclose(matrix[i], v / np.linalg.norm(v), rtol=1e-6, err_msg=word)
    assert VOCAB.token(VOCAB.unk_id) == "<unk>" and "<unk>" in vectors


def test_vocabulary_words_without_vectors_get_random_unit_rows(tmp_path):
    # "and" appears only in train: with a validation-only corpus it has no vector
    cfg = Word2VecConfig(dim=DIM, splits=("validation",))
    matrix, cached = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=FakeTrainer())
    assert "and" not in cached.vectors.words
    row = VOCAB.encode(["and"])[0]
    np.testing.assert_allclose(np.linalg.norm(matrix[row]), 1.0, rtol=1e-6)
    again, _ = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=FakeTrainer())
    np.testing.assert_array_equal(matrix, again)


def test_cache_reuses_and_retrains_when_data_settings_or_trainer_change(tmp_path):
    trainer = FakeTrainer()
    cfg = Word2VecConfig(dim=DIM)
    first = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=trainer)[1]
    second = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=trainer)[1]
    assert len(trainer.calls) == 1 and second.reused and second.path == first.path
    assert second.vectors.words == first.vectors.words
    np.testing.assert_array_equal(second.vectors.vectors, first.vectors.vectors)

    changed = {**TEXTS, "train": [TEXTS["train"][0], "A cat and a dog. Zebra twice."]}
    third = word2vec_matrix(_dataset(changed), VOCAB, cfg, tmp_path, trainer=trainer)[1]
    assert len(trainer.calls) == 2 and not third.reused and third.path != first.path
    assert "data_sha256.train" in third.reason
    # a test-split change does not touch the embeddings' corpus: reused
    other_test = {**TEXTS, "test": ["Other test text."]}
    assert word2vec_matrix(_dataset(other_test), VOCAB, cfg, tmp_path, trainer=trainer)[1].reused

    window = dataclasses.replace(cfg, window=2)
    fourth = word2vec_matrix(_dataset(), VOCAB, window, tmp_path, trainer=trainer)[1]
    assert not fourth.reused and "config.window" in fourth.reason
    trainer.revision = "fake 2"
    fifth = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path, trainer=trainer)[1]
    assert not fifth.reused and "trainer" in fifth.reason
    smaller = Vocabulary(list(VOCAB.words[:-1]))
    sixth = word2vec_matrix(_dataset(), smaller, cfg, tmp_path, trainer=trainer)[1]
    assert not sixth.reused and "vocab_sha256" in sixth.reason
    assert len(trainer.calls) == 5


def test_cache_extra_corpus_is_part_of_the_key(tmp_path):
    trainer = FakeTrainer()
    corpus = tmp_path / "extra.txt"
    corpus.write_text("The zebra sat.\n\nA dog!\n", encoding="utf-8")
    cfg = Word2VecConfig(dim=DIM)
    kw = {"trainer": trainer, "extra_corpus": corpus}
    word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path / "c", **kw)
    assert trainer.calls[0][-2:] == [["the", "<unk>", "sat", "."], ["a", "dog", "!"]]
    assert word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path / "c", **kw)[1].reused
    corpus.write_text("The zebra ran.\n", encoding="utf-8")
    again = word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path / "c", **kw)[1]
    assert not again.reused and "extra_corpus_sha256" in again.reason
    corpus.write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="UTF-8"):
        word2vec_matrix(_dataset(), VOCAB, cfg, tmp_path / "c", **kw)


def test_cache_verifies_the_stored_record_and_survives_a_corrupt_file(tmp_path):
    record = {"format": "x", "config": {"window": 5}}
    calls = []

    def train():
        calls.append(1)
        return WordVectors(("a", "b"), np.ones((2, 3), np.float32) * len(calls))

    path = cache_path(tmp_path, "name", record)
    with open(path, "wb") as f:
        f.write(b"not an npz")
    got = cached_vectors(tmp_path, "name", record, train)
    assert not got.reused and "unreadable" in got.reason and len(calls) == 1
    # A file at the right name holding another record (a hand copy) is not trusted.
    with np.load(path) as f:
        arrays = dict(f)
    arrays["record"] = np.asarray(json.dumps({"format": "x", "config": {"window": 9}}))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    got = cached_vectors(tmp_path, "name", record, train)
    assert not got.reused and "config.window: 9 -> 5" in got.reason and len(calls) == 2
    reused = cached_vectors(tmp_path, "name", record, train)
    assert reused.reused and len(calls) == 2
    np.testing.assert_array_equal(reused.vectors.vectors, np.full((2, 3), 2.0, np.float32))


def test_gensim_vectors_are_deterministic_with_one_worker():
    sentences = [["the", "cat", "sat", "."], ["a", "dog", "ran", "!"], ["the", "dog", "sat"]] * 20
    cfg = Word2VecConfig(dim=DIM, epochs=2, seed=7)
    trainer = GensimTrainer()
    assert trainer.revision.startswith("gensim ")
    one, two = trainer(sentences, cfg), trainer(sentences, cfg)
    assert set(one.words) == {w for s in sentences for w in s}  # min_count 0 keeps every word
    assert one.words == two.words and one.vectors.shape == (len(one.words), DIM)
    np.testing.assert_array_equal(one.vectors, two.vectors)
    other = trainer(sentences, dataclasses.replace(cfg, seed=8))
    assert not np.allclose(other.vectors, one.vectors)
    skip_gram = trainer(sentences, dataclasses.replace(cfg, skip_gram=True))
    assert not np.allclose(skip_gram.vectors, one.vectors)


def test_missing_gensim_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    with pytest.raises(ImportError, match=r"\.\[word2vec\]") as raised:
        GensimTrainer()
    # a preset may choose word2vec (HAN-rnn on small corpora): the way out is named too
    assert "--embeddings=random" in str(raised.value)


def test_config_rejects_bad_values():
    for bad in ({"dim": 0}, {"window": 0}, {"negative": -1}, {"splits": ()}):
        with pytest.raises(ValueError, match="Word2VecConfig"):
            Word2VecConfig(**bad)
