"""`--embeddings=word2vec` through the training launcher: the model starts from the vectors."""

from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from attn_interp.data import DataConfig, Vocabulary, load_splits
from attn_interp.embeddings import Word2VecConfig, word2vec_matrix
from attn_interp.train.run import load_run
from experiments import train as launcher

_WORDS = ["ball", "goal", "team", "bread", "soup", "salt", "code", "chip", "disk"]


def _write(path, n, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            own = rng.choice(_WORDS[3 * (i % 3) : 3 * (i % 3) + 3], 5)
            text = " ".join(own).capitalize() + ". " + " ".join(rng.choice(_WORDS, 3)) + "."
            f.write(json.dumps({"text": text, "label": f"c{i % 3}"}) + "\n")


def _launch(workdir, files, cache, model):
    fv = flags.FlagValues()
    launcher.define_flags(fv)
    fv(
        [
            "train",
            f"--workdir={workdir}",
            f"--model={model}",
            "--dataset=local",
            *(f"--local_{s}={p}" for s, p in files.items()),
            f"--cache_dir={cache}",
            "--min_count=1",
            "--embed_dim=8",
            "--hidden=4",
            "--epochs=1",
            "--batch_size=8",
            "--learning_rate=1e-12",  # the trained embeddings stay the initial ones
            "--save_every_steps=0",
            "--noprogress",
            "--embeddings=word2vec",
            "--word2vec_epochs=2",
            "--word2vec_seed=5",
        ]
    )
    return launcher.run(fv)


def test_word2vec_initialises_the_model_and_is_reused(tmp_path):
    files = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "validation", "test")}
    for path, (n, seed) in zip(files.values(), ((30, 0), (9, 1), (9, 2)), strict=True):
        _write(path, n, seed)
    cache = tmp_path / "cache"
    final = _launch(tmp_path / "flan", files, cache, "flan_conv")
    assert final["embeddings"] == "word2vec" and not final["word2vec_reused"]
    assert os.path.dirname(final["word2vec_vectors"]) == str(cache / "word2vec")
    config = json.loads((tmp_path / "flan" / "config.json").read_text())
    assert config["train"]["embeddings"] == "word2vec"
    assert config["word2vec"]["dim"] == 8 and config["word2vec"]["epochs"] == 2

    run = load_run(str(tmp_path / "flan"))
    data_cfg = DataConfig(
        dataset="local", cache_dir=str(cache), **{f"local_{s}": p for s, p in files.items()}
    )
    vocab = Vocabulary.load(tmp_path / "flan" / "vocab.json")
    cfg = Word2VecConfig(dim=8, epochs=2, seed=5)
    matrix, cached = word2vec_matrix(load_splits(data_cfg), vocab, cfg, cache)
    assert cached.reused and cached.path == final["word2vec_vectors"]
    table = np.asarray(run.model.embed.embedding[...])
    np.testing.assert_allclose(table, matrix, atol=1e-6)
    assert np.all(table[0] == 0.0)

    other = _launch(tmp_path / "again", files, cache, "flan_conv")
    assert other["word2vec_reused"] and other["word2vec_vectors"] == final["word2vec_vectors"]


def _settings(arch, *args, train_docs=7000):
    from experiments import config_flags

    fv = flags.FlagValues()
    config_flags.define_training_flags(fv)
    fv(["train", *args])
    return config_flags.training_settings(fv, "yahoo_answers_10k", arch, train_docs)


def test_word2vec_flags_default_to_the_preset_and_override_it():
    han = _settings("han_rnn")  # small corpus: HAN-rnn's own preset, skip-gram vectors
    assert han.train.embeddings == "word2vec" and han.word2vec == Word2VecConfig(skip_gram=True)
    assert han.model_overrides["sentence_dropout"] == 0.478
    cbow = _settings("han_rnn", "--noword2vec_skip_gram", "--word2vec_epochs=3")
    assert cbow.word2vec == Word2VecConfig(skip_gram=False, epochs=3)
    assert _settings("han_rnn", "--embeddings=random").train.embeddings == "random"
    flan = _settings("flan_conv", "--word2vec_window=2")
    assert flan.train.embeddings == "random" and flan.word2vec == Word2VecConfig(window=2)
    large = _settings("han_rnn", train_docs=50_000)  # the paper's table: CBOW
    assert large.word2vec == Word2VecConfig() and large.model_overrides["sentence_dropout"] == 0.22
