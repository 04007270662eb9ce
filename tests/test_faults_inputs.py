"""Bad and extreme inputs: documents without tokens or of unknown words only, one-item documents,
documents of thousands of tokens through a tiny model and the erasure suite, near one-hot attention
in float32 and float64. Each gives a counted skip or finite numbers, never NaN or a crash.

Covered elsewhere: empty/whitespace-only rows, malformed rows, invalid UTF-8, unseen labels
(tests/test_data_sources.py); missing/corrupt checkpoints and workdirs of another model
(tests/test_train_run.py); path traversal and sha256 pins (tests/test_data_sources.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.data import Split, Vocabulary, encode_corpus
from attn_interp.erasure import (
    AffineParams,
    ErasureConfig,
    from_flat,
    run_suite,
    summarize,
    to_flat,
)
from attn_interp.models import ModelConfig, make_model, masked_softmax

pytestmark = pytest.mark.faults

CFG = ErasureConfig(num_random=2)
_DETERMINISTIC = ("seq_len", "predicted", "single_top_", "single_second_", "rank_attention")
_FLOAT_KEYS = ("single_top_js", "single_top_kl", "single_random_js", "single_random_kl")


def _check_finite(res: dict, rows: np.ndarray) -> None:
    for key, value in res.items():
        value = np.asarray(value)
        if key.startswith("items/") or value.dtype.kind != "f":
            continue
        assert not np.isnan(value[rows]).any() or key not in _FLOAT_KEYS, key
    for key in _FLOAT_KEYS:
        if key in res:
            vals = np.asarray(res[key])[rows]
            assert np.all(np.isfinite(vals)), key
            assert np.all(vals >= 0.0), key
            if "_js" in key:
                assert np.all(vals <= math.log(2) + 1e-6), key


def test_documents_without_tokens_or_of_unknown_words_only():
    vocab = Vocabulary.build([["good", "film"], ["bad", "film"]], min_count=1)
    texts = ["good film", "  \t\n ", "zzz qqq xxx", "<br /><br />", "Good. Qqq."]
    split = Split(texts, np.zeros(len(texts), np.int32))
    for hierarchical in (False, True):
        corpus = encode_corpus(split, vocab, hierarchical=hierarchical)
        # whitespace- or markup-only documents are skipped and counted, never an error
        assert list(corpus.skipped_doc_index) == [1, 3]
        assert len(corpus) == 3
    flan = encode_corpus(split, vocab, hierarchical=False)
    unknown_only = flan.docs[list(flan.doc_index).index(2)]
    assert np.all(np.asarray(unknown_only) == vocab.unk_id)  # evaluated as UNK tokens


def _tiny_model(arch: str, vocab_size: int = 50):
    cfg = ModelConfig(arch, vocab_size=vocab_size, num_classes=3, embed_dim=8, hidden=4)
    model = make_model(cfg, rngs=nnx.Rngs(0))
    model.eval()
    return model


@pytest.mark.parametrize("arch", ["flan_conv", "han_rnn"])
def test_thousands_of_tokens_one_item_and_unknown_only_through_model_and_suite(arch):
    rng = np.random.default_rng(0)
    model = _tiny_model(arch)
    unk = 49
    if arch.startswith("flan"):
        tokens = np.zeros((4, 3000), np.int32)
        tokens[0] = rng.integers(1, 50, 3000)  # 3000 tokens
        tokens[1, 0] = 7  # one item: n = 1
        tokens[2, :5] = unk  # unknown words only
        tokens[3, :40] = rng.integers(1, 50, 40)
    else:
        tokens = np.zeros((4, 300, 12), np.int32)
        tokens[0] = rng.integers(1, 50, (300, 12))  # 300 sentences, 3600 tokens
        tokens[1, 0, :3] = [4, 5, 6]  # one sentence: n = 1
        tokens[2, :2, :4] = unk
        tokens[3, :6, :5] = rng.integers(1, 50, (6, 5))
    inputs = model.encode(jnp.asarray(tokens))
    assert np.all(np.isfinite(np.asarray(inputs.values)))
    kernel, bias = model.head_params()
    res = to_flat(
        run_suite(
            inputs.values, inputs.scores, inputs.mask, affine=AffineParams(kernel, bias), config=CFG
        )
    )
    seq = np.asarray(res["seq_len"])
    assert seq[1] == 1 and seq[0] >= 300
    _check_finite(res, np.flatnonzero(seq > 1))
    weights = np.asarray(masked_softmax(inputs.scores, inputs.mask))
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    summary = summarize(from_flat(res))
    assert summary["counts"]["excluded_n_eq_1"] == 1  # counted, left out of the statistics
    assert summary["counts"]["included_n_gt_1"] == 3


def test_near_one_hot_attention_and_removing_everything_agree_in_float32_and_float64():
    rng = np.random.default_rng(1)
    b, n, d, c = 6, 9, 8, 3
    values = rng.normal(size=(b, n, d))
    scores = rng.normal(size=(b, n))
    scores[0, 3] = 60.0  # one-hot in float32 (the other weights underflow below 1e-26)
    scores[1, 0] = 25.0  # near one-hot
    scores[2] = 0.0  # uniform
    mask = np.ones((b, n), bool)
    mask[3, 2:] = False  # n = 2: removing both items removes everything
    kernel = rng.normal(size=(d, c))
    bias = np.array([0.0, 5.0, -5.0])  # a bias that wins once every item is removed
    out = {}
    for dtype in (np.float32, np.float64):
        with jax.enable_x64(dtype == np.float64):
            out[dtype] = to_flat(
                run_suite(
                    jnp.asarray(values, dtype),
                    jnp.asarray(scores, dtype),
                    mask,
                    affine=AffineParams(jnp.asarray(kernel, dtype), jnp.asarray(bias, dtype)),
                    config=CFG,
                )
            )
    r32, r64 = out[np.float32], out[np.float64]
    rows = np.arange(b)
    _check_finite(r32, rows)
    _check_finite(r64, rows)
    compared = [k for k in r64 if k.startswith(_DETERMINISTIC)]  # random draws depend on dtype
    assert {"single_top_js", "single_top_flip", "rank_attention_k"} <= set(compared)
    for key in compared:
        a, e = np.asarray(r32[key]), np.asarray(r64[key])
        if key in ("js_clipped", "kl_clipped"):  # round-off counts may differ between dtypes
            assert a.min() >= 0 and e.min() >= 0
        elif a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, e, err_msg=key)
        else:
            np.testing.assert_allclose(a, e, rtol=2e-4, atol=2e-5, equal_nan=True, err_msg=key)
