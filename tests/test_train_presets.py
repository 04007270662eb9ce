"""Presets by corpus size: the small-corpus adjustment follows the training split's size."""

import dataclasses

import pytest

from attn_interp.train.config import (
    SMALL_CORPUS_ADJUSTMENT,
    SMALL_CORPUS_MAX_TRAIN_DOCS,
    is_small_corpus,
    paper_preset,
    preset_for,
)


@pytest.mark.parametrize("name", ["yahoo_answers_10k", "my_complaints", "imdb_50k"])
def test_small_training_split_gets_the_adjustment_whatever_the_name(name):
    paper = paper_preset(name, "han_rnn")
    tuned = preset_for(name, "han_rnn", train_docs=7000)
    for field, value in SMALL_CORPUS_ADJUSTMENT.items():
        assert getattr(tuned.train, field) == value
    assert tuned.train.learning_rate != paper.train.learning_rate
    assert (paper.train.embeddings, tuned.train.embeddings) == ("word2vec", "random")
    # everything else stays the paper's row for the dataset family
    others = {f.name for f in dataclasses.fields(paper.train)} - set(SMALL_CORPUS_ADJUSTMENT)
    for field in others:
        assert getattr(tuned.train, field) == getattr(paper.train, field), field
    assert tuned.dropouts == paper.dropouts


def test_threshold_and_overrides():
    edge = SMALL_CORPUS_MAX_TRAIN_DOCS
    assert is_small_corpus(edge - 1) and not is_small_corpus(edge)
    assert is_small_corpus(0)
    with pytest.raises(ValueError, match="train_docs"):
        is_small_corpus(-1)
    # a large training split keeps the paper's table, even for a yahoo-named dataset
    assert preset_for("yahoo_answers_10k", "han_rnn", train_docs=edge) == paper_preset(
        "yahoo_answers_10k", "han_rnn"
    )
    assert preset_for("imdb_50k", "flan_rnn", train_docs=39687) == paper_preset(
        "imdb_50k", "flan_rnn"
    )
    assert preset_for("my_data", "han_rnn", train_docs=10, paper=True) == paper_preset(
        "my_data", "han_rnn"
    )
    assert preset_for("yahoo_answers_10k", "flan_noenc", train_docs=7000).train.patience >= 3
