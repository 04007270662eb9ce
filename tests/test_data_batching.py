"""Vocabulary, encoding, batching: padding, masks, bucketing, determinism, caps."""

import collections
import json

import numpy as np
import pytest

from attn_interp.data import (
    BatchConfig,
    EncodedCorpus,
    PackConfig,
    Split,
    Vocabulary,
    apply_training_caps,
    encode_corpus,
    make_batches,
    pack_config_for,
    pack_sentences,
    padding_stats,
    tokenize,
    tokenize_sentences,
)
from attn_interp.data.batching import packed_rows


def _round_up(x, m):
    return -(-x // m) * m


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_min_count_order_pad_unk():
    lists = [["b", "a", "B"], ["c", "a"], ["b", "d", "a"]]
    vocab = Vocabulary.build(lists, min_count=2)
    counts = collections.Counter(t.lower() for toks in lists for t in toks)
    first_seen = list(dict.fromkeys(t.lower() for toks in lists for t in toks))
    assert vocab.words == tuple(w for w in first_seen if counts[w] >= 2) == ("b", "a")
    assert vocab.pad_id == 0 and vocab.unk_id == 3 and len(vocab) == 4
    assert vocab.encode(["A", "b", "zzz", "c"]) == [2, 1, 3, 3]
    assert vocab.decode([1, 0, 2, 3]) == ["b", "a", "<unk>"]
    assert len(Vocabulary.build(lists, min_count=1)) == len(first_seen) + 2
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(lists, min_count=0)


def test_vocabulary_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)] + ["café", "don't", "\\"]
    lists = [list(rng.choice(words, size=20)) for _ in range(30)]
    vocab = Vocabulary.build(lists, min_count=3)
    path = tmp_path / "run" / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.unk_id == vocab.unk_id and loaded.min_count == 3
    probe = list(rng.choice(words + ["never-seen"], size=50))
    assert loaded.encode(probe) == vocab.encode(probe)
    assert not list(path.parent.glob("*.tmp"))


def test_vocabulary_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "v.json"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="v.json"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"format": "attn_interp.vocabulary.v1", "words": ["a", "a"]}))
    with pytest.raises(ValueError, match="twice"):
        Vocabulary.load(bad)
    bad.write_text(json.dumps({"words": ["a"]}))
    with pytest.raises(ValueError, match="not a vocabulary file"):
        Vocabulary.load(bad)


# ---------------------------------------------------------------- encoding


def test_encode_corpus_han_and_flan_skip_empty_docs():
    texts = ["Hello world. Bye now!", "<br />", "x y z", "  ...  ", "Hello? World."]
    split = Split(texts, np.arange(5, dtype=np.int32))
    vocab = Vocabulary.build([tokenize(t) for t in texts], min_count=1)
    han = encode_corpus(split, vocab, hierarchical=True)
    flan = encode_corpus(split, vocab, hierarchical=False)
    for corpus in (han, flan):
        assert corpus.doc_index.tolist() == [0, 2, 3, 4]
        assert corpus.labels.tolist() == [0, 2, 3, 4]
        assert corpus.skipped == {"no_tokens": 1} and corpus.skipped_doc_index == (1,)
        assert corpus.num_input_docs == 5
    for d, i in zip(han.docs, han.doc_index, strict=True):
        assert [vocab.decode(s) for s in d] == tokenize_sentences(texts[i])
    for d, i in zip(flan.docs, flan.doc_index, strict=True):
        assert d.dtype == np.int32 and vocab.decode(d) == tokenize(texts[i])


# ---------------------------------------------------------------- batching


def _random_corpus(rng, n, hierarchical, vocab_size=50):
    docs = []
    for _ in range(n):
        if hierarchical:
            ns = int(rng.geometric(0.25))
            docs.append(
                [
                    rng.integers(1, vocab_size, size=int(rng.geometric(0.1))).astype(np.int32)
                    for _ in range(ns)
                ]
            )
        else:
            docs.append(rng.integers(1, vocab_size, size=int(rng.geometric(0.03))).astype(np.int32))
    doc_index = np.sort(rng.choice(3 * n, size=n, replace=False)).astype(np.int64)
    labels = rng.integers(0, 5, size=n).astype(np.int32)
    return EncodedCorpus(docs, labels, doc_index, hierarchical, 3 * n, {})


def _unpack(batches, hierarchical):
    """Slow reference decoding of batches back to {doc_index: (doc, label)}, checking padding."""
    out = {}
    for b in batches:
        assert b.tokens.dtype == np.int32 and b.labels.dtype == np.int32
        assert b.doc_index.dtype == np.int64
        assert b.tokens.shape[0] == b.labels.shape[0] == b.doc_index.shape[0]
        for row in range(b.tokens.shape[0]):
            toks = b.tokens[row]
            if b.doc_index[row] < 0:
                assert not toks.any() and b.labels[row] == 0
                continue
            if hierarchical:
                present = toks[:, 0] != 0
                n_sent = int(present.sum())
                assert present[:n_sent].all() and not toks[n_sent:].any()  # sentences first
                doc = []
                for s in toks[:n_sent]:
                    n_tok = int((s != 0).sum())
                    assert (s[:n_tok] != 0).all()  # real tokens, then padding
                    doc.append(s[:n_tok].tolist())
            else:
                n_tok = int((toks != 0).sum())
                assert (toks[:n_tok] != 0).all()
                doc = toks[:n_tok].tolist()
            assert int(b.doc_index[row]) not in out
            out[int(b.doc_index[row])] = (doc, int(b.labels[row]))
    return out


def _as_lists(doc, hierarchical):
    return [s.tolist() for s in doc] if hierarchical else doc.tolist()


@pytest.mark.parametrize("hierarchical", [True, False])
@pytest.mark.parametrize("pad_multiple", [1, 8])
def test_eval_batches_keep_every_doc_once_with_padding_and_masks(hierarchical, pad_multiple):
    rng = np.random.default_rng(pad_multiple + hierarchical)
    corpus = _random_corpus(rng, 150, hierarchical)
    cfg = BatchConfig(batch_size=16, pad_multiple=pad_multiple, max_cells_per_batch=4096)
    batches = make_batches(corpus, cfg, hierarchical=hierarchical, train=False)
    got = _unpack(batches, hierarchical)
    assert sorted(got) == corpus.doc_index.tolist()
    for d, i, y in zip(corpus.docs, corpus.doc_index, corpus.labels, strict=True):
        assert got[int(i)] == (_as_lists(d, hierarchical), int(y))
    for b in batches:
        real_rows = int((b.doc_index >= 0).sum())
        assert real_rows <= 16 and b.tokens.shape[0] <= 16
        assert all(dim % pad_multiple == 0 for dim in b.tokens.shape[1:])
        if real_rows > 1:
            assert b.tokens[:real_rows].size <= 4096  # cell cap respected (split when exceeded)
    again = make_batches(corpus, cfg, hierarchical=hierarchical, train=False)
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize("hierarchical", [True, False])
def test_train_batches_deterministic_per_seed_and_epoch(hierarchical):
    corpus = _random_corpus(np.random.default_rng(3), 200, hierarchical)
    cfg = BatchConfig(batch_size=8, bucket_chunk_batches=4)

    def order(seed, epoch):
        bs = make_batches(
            corpus, cfg, hierarchical=hierarchical, train=True, seed=seed, epoch=epoch
        )
        return np.concatenate([b.doc_index for b in bs])

    a, b = order(0, 0), order(0, 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, order(0, 1))
    assert not np.array_equal(a, order(1, 0))
    assert sorted(a[a >= 0].tolist()) == corpus.doc_index.tolist()


@pytest.mark.parametrize("hierarchical", [True, False])
def test_bucketing_pads_less_than_random_order(hierarchical):
    rng = np.random.default_rng(7)
    corpus = _random_corpus(rng, 400, hierarchical)
    cfg = BatchConfig(batch_size=16, pad_multiple=1, max_cells_per_batch=1 << 30, pad_rows=False)
    bucketed = padding_stats(make_batches(corpus, cfg, hierarchical=hierarchical, train=True))
    # Slow reference: random order, consecutive groups of 16.
    ns, mw = corpus.num_sentences(), corpus.max_sentence_length()
    perm = rng.permutation(len(corpus))
    cells = sum(
        len(g) * int(mw[g].max()) * (int(ns[g].max()) if hierarchical else 1)
        for g in np.array_split(perm, len(perm) // 16)
    )
    assert bucketed["real"] == corpus.num_tokens().sum()
    assert bucketed["cells"] < 0.8 * cells


def test_training_caps_drop_and_count_but_eval_keeps_everything():
    corpus = _random_corpus(np.random.default_rng(11), 300, True)
    cfg = BatchConfig(batch_size=32, max_sentences_per_doc=4, max_tokens_per_sentence=12)
    ns, mw = corpus.num_sentences(), corpus.max_sentence_length()
    over_s, over_w = ns > 4, mw > 12
    kept, dropped = apply_training_caps(corpus, cfg)
    assert dropped == {
        "too_many_sentences": int(over_s.sum()),
        "sentence_too_long": int((over_w & ~over_s).sum()),
    }
    assert kept.doc_index.tolist() == corpus.doc_index[~(over_s | over_w)].tolist()
    train = make_batches(corpus, cfg, hierarchical=True, train=True)
    seen = _unpack(train, True)
    assert sorted(seen) == kept.doc_index.tolist()
    assert all(len(d) <= 4 and max(map(len, d)) <= 12 for d, _ in seen.values())
    evaluation = _unpack(make_batches(corpus, cfg, hierarchical=True, train=False), True)
    assert sorted(evaluation) == corpus.doc_index.tolist()

    flan = _random_corpus(np.random.default_rng(12), 100, False)
    kept_f, dropped_f = apply_training_caps(flan, BatchConfig(max_tokens_per_doc=20))
    assert dropped_f == {"too_many_tokens": int((flan.num_tokens() > 20).sum())}
    assert (kept_f.num_tokens() <= 20).all()


def test_filler_rows_and_oversized_single_doc():
    corpus = _random_corpus(np.random.default_rng(5), 11, False)
    b = make_batches(
        corpus, BatchConfig(batch_size=64, pad_multiple=8), hierarchical=False, train=False
    )
    assert len(b) == 1 and b[0].tokens.shape[0] == 16 and (b[0].doc_index == -1).sum() == 5
    huge = EncodedCorpus([np.ones(100, np.int32), np.ones(3, np.int32)], np.zeros(2, np.int32),
                         np.arange(2), False, 2, {})  # fmt: skip
    bs = make_batches(huge, BatchConfig(max_cells_per_batch=64), hierarchical=False, train=False)
    assert sorted(int(i) for x in bs for i in x.doc_index if i >= 0) == [0, 1]
    assert max(x.tokens.shape[1] for x in bs) == 104


def test_make_batches_rejects_mismatched_layout_and_bad_config():
    corpus = _random_corpus(np.random.default_rng(0), 5, True)
    with pytest.raises(ValueError, match="same hierarchical flag"):
        make_batches(corpus, BatchConfig(), hierarchical=False, train=False)
    with pytest.raises(ValueError, match="batch_size"):
        BatchConfig(batch_size=0)


# ---------------------------------------------------------------- packed HAN sentences


def _unpack_packed(packed, shape):
    """[batch, sentences, words] tokens rebuilt from PackedSentences (sentence spans in order)."""
    docs, sentences = packed.sentence_mask.shape
    out = np.zeros((docs * sentences, shape[2]), np.int64)
    for r, c in zip(*np.nonzero(packed.segment < docs * sentences), strict=True):
        slot = packed.segment[r, c]
        start = c
        while start > 0 and packed.segment[r, start - 1] == slot:
            start -= 1
        out[slot, c - start] = packed.words[r, c]
    return out.reshape(docs, sentences, -1)[: shape[0], : shape[1]]


@pytest.mark.parametrize("gap", [0, 2])
def test_pack_sentences_round_trips_real_sentences_contiguously(gap):
    rng = np.random.default_rng(4)
    tokens = rng.integers(1, 50, size=(6, 7, 9)).astype(np.int32)
    lengths = rng.integers(1, 10, size=(6, 7))
    tokens[np.arange(9)[None, None] >= lengths[..., None]] = 0
    tokens[0, 3:] = 0  # fewer sentences
    tokens[1, 2, 3] = 0  # a zero inside a sentence stays (the models mask it)
    tokens[2, 1, 0] = 0  # first token 0: not a sentence, although later tokens are non-zero
    tokens[5] = 0  # filler row
    cfg = PackConfig(docs=8, sentences=4, width=12, gap=gap)
    packed = pack_sentences(tokens, cfg)
    real = tokens[:, :, 0] != 0
    want = np.where(real[..., None], tokens, 0)
    np.testing.assert_array_equal(_unpack_packed(packed, tokens.shape), want)
    docs, sentences = packed.sentence_mask.shape
    assert (docs, sentences) == (8, 8) and packed.words.shape[1] == 12
    np.testing.assert_array_equal(packed.sentence_mask[:6, :7], real)
    assert not packed.sentence_mask[6:].any() and not packed.sentence_mask[:, 7:].any()
    # each sentence is one run within one row; runs in a row are `gap` apart or more
    for row in packed.segment:
        ids = [int(v) for v in row]
        runs = [(v, i) for i, v in enumerate(ids) if v < docs * sentences and (i == 0 or ids[i - 1] != v)]  # fmt: skip
        assert len({v for v, _ in runs}) == len(runs)
        for _, b in runs[1:]:
            assert np.all(row[b - gap : b] == docs * sentences)
    assert len(np.unique(packed.segment[packed.segment < docs * sentences])) == real.sum()
    # several sentences share rows; the rows axis is the ladder value over the rows used
    used = int((packed.segment < docs * sentences).any(1).sum())
    assert used < real.sum() and packed.words.shape[0] == packed_rows(used, cfg)


def test_pack_sentences_ladder_shapes_long_sentences_and_empty_batches():
    cfg = PackConfig(docs=4, sentences=2, width=8, ratio=2.0)
    tokens = np.zeros((3, 5, 20), np.int32)
    tokens[0, 0, :20] = 1  # a sentence longer than the minimum width: next ladder value
    tokens[1, 4, :3] = 2
    packed = pack_sentences(tokens, cfg)
    assert packed.words.shape == (8, 32) and packed.sentence_mask.shape == (4, 8)
    empty = pack_sentences(np.zeros((2, 3, 4), np.int32), cfg)
    assert empty.words.shape == (8, 8) and not empty.sentence_mask.any()
    assert np.all(empty.segment == 4 * 2)
    with pytest.raises(ValueError, match="batch, sentences, words"):
        pack_sentences(np.zeros((2, 3), np.int32), cfg)
    with pytest.raises(ValueError, match="ratio"):
        PackConfig(ratio=1.0)


def test_packed_rows_is_the_smaller_of_ratio_ladder_and_row_steps():
    cfg = PackConfig(rows_step=16)
    got = [packed_rows(u, cfg) for u in (0, 1, 8, 9, 16, 17, 33, 48, 49, 65, 80, 81, 97, 200)]
    assert got == [8, 8, 8, 16, 16, 32, 48, 48, 64, 80, 80, 96, 112, 208]
    assert [packed_rows(u, PackConfig(rows_step=64)) for u in (5, 40, 65)] == [8, 64, 128]
    with pytest.raises(ValueError, match="rows_step"):
        PackConfig(rows_step=0)


def test_pack_config_for_covers_most_documents():
    docs = [[np.ones(5, np.int32)] * 3] * 90 + [[np.ones(5, np.int32)] * 30] * 10
    docs[0] = [np.ones(40, np.int32)]
    corpus = EncodedCorpus(
        docs=docs,
        labels=np.zeros(100, np.int32),
        doc_index=np.arange(100),
        hierarchical=True,
        num_input_docs=100,
        skipped={},
    )
    assert pack_config_for(corpus, 64, quantile=0.5) == PackConfig(64, 8, 8)
    assert pack_config_for(corpus, 50, gap=2, quantile=0.95) == PackConfig(64, 32, 8, gap=2)
    assert pack_config_for(corpus, 8, quantile=1.0).width == 64  # the one 40-word sentence
