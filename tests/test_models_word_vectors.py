"""Loading word2vec / GloVe text files into an initial embedding matrix."""

import numpy as np
import pytest

from attn_interp.models import load_word_vectors


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_word2vec_file_with_header(tmp_path):
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=4) for w in ["the", "cat", "Sat", "ignored"]}
    lines = ["4 4"] + [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in vecs.items()]
    path = _write(tmp_path / "vectors.txt", lines)
    vocab = ["@@PADDING@@", "the", "cat", "sat", "dog", "@@UNKNOWN@@"]
    matrix = load_word_vectors(path, vocab, 4, seed=1)
    assert matrix.shape == (6, 4) and matrix.dtype == np.float32
    assert np.all(matrix[0] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(matrix[1:], axis=1), 1.0, rtol=1e-6)
    for i, word in [(1, "the"), (2, "cat")]:
        v = np.round(vecs[word], 6)
        np.testing.assert_allclose(matrix[i], v / np.linalg.norm(v), rtol=1e-5)
    # "sat" is only in the file as "Sat": missing without lowercasing, found with it.
    v_sat = np.round(vecs["Sat"], 6)
    assert not np.allclose(matrix[3], v_sat / np.linalg.norm(v_sat))
    lowered = load_word_vectors(path, vocab, 4, seed=1, lowercase=True)
    np.testing.assert_allclose(lowered[3], v_sat / np.linalg.norm(v_sat), rtol=1e-5)
    # Missing words: random unit vectors, reproducible from the seed, distinct across words.
    np.testing.assert_array_equal(matrix[4:], load_word_vectors(path, vocab, 4, seed=1)[4:])
    assert not np.allclose(matrix[4], matrix[5])
    assert not np.allclose(matrix[4], load_word_vectors(path, vocab, 4, seed=2)[4])


def test_glove_file_without_header_and_mapping_vocab(tmp_path):
    path = _write(tmp_path / "glove.txt", ["a 3 0 4", "b 0 0 0", "c d 1 1 1", "e 2 2 1"])
    vocab = {"a": 1, "b": 2, "c d": 3, "zzz": 5}
    matrix = load_word_vectors(path, vocab, 3)
    assert matrix.shape == (6, 3)
    np.testing.assert_allclose(matrix[1], [0.6, 0.0, 0.8], rtol=1e-6)
    np.testing.assert_allclose(matrix[3], np.ones(3) / np.sqrt(3), rtol=1e-6)
    # zero vector in the file and ids absent from the file both get random unit rows
    np.testing.assert_allclose(np.linalg.norm(matrix[[2, 4, 5]], axis=1), 1.0, rtol=1e-6)
    assert np.all(matrix[0] == 0.0)


def test_dimension_mismatch_is_reported(tmp_path):
    header = _write(tmp_path / "h.txt", ["1 5", "a 1 2 3 4 5"])
    with pytest.raises(ValueError, match="5-d"):
        load_word_vectors(header, ["", "a"], 3)
    short = _write(tmp_path / "s.txt", ["a 1 2"])
    with pytest.raises(ValueError, match="s.txt:1"):
        load_word_vectors(short, ["", "a"], 3)
