"""Tests of the training loop: optimizer step, clipping, LR schedule, early stopping,
determinism, checkpoint round trip and resumption after an interruption."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attn_interp.models import ModelConfig, make_model
from attn_interp.train import checkpoint, loop, optim
from attn_interp.train.config import TrainConfig, paper_preset
from attn_interp.types import Batch

VOCAB, CLASSES = 30, 3


def tiny_model(seed: int = 0, arch: str = "flan_conv", **kw) -> nnx.Module:
    cfg = ModelConfig(arch, vocab_size=VOCAB, num_classes=CLASSES, embed_dim=8, hidden=4, **kw)
    return make_model(cfg, rngs=nnx.Rngs(seed))


def synthetic_docs(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Documents whose class decides which third of the vocabulary most of their tokens come from."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n).astype(np.int32)
    docs = []
    width = (VOCAB - 1) // CLASSES
    for y in labels:
        length = int(rng.integers(3, 12))
        own = rng.integers(1 + y * width, 1 + (y + 1) * width, length)
        noise = rng.integers(1, VOCAB, length)
        docs.append(np.where(rng.random(length) < 0.7, own, noise).astype(np.int32))
    return docs, labels


def to_batches(docs, labels, batch_size: int, order: np.ndarray) -> list[Batch]:
    """FLAN batches padded to a multiple of 4 tokens; the last batch is filled with filler rows."""
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = -(-max(len(docs[i]) for i in idx) // 4) * 4
        tokens = np.zeros((batch_size, width), np.int32)
        lab = np.zeros(batch_size, np.int32)
        doc_index = np.full(batch_size, -1, np.int64)
        for row, i in enumerate(idx):
            tokens[row, : len(docs[i])] = docs[i]
            lab[row], doc_index[row] = labels[i], i
        out.append(Batch(tokens, lab, doc_index))
    return out


@pytest.fixture(scope="module")
def data():
    train_docs, train_labels = synthetic_docs(40, seed=1)
    val_docs, val_labels = synthetic_docs(16, seed=2)

    def train_batches(epoch: int, seed: int = 0) -> list[Batch]:
        order = np.random.default_rng([seed, epoch]).permutation(len(train_docs))
        return to_batches(train_docs, train_labels, 8, order)

    validation = to_batches(val_docs, val_labels, 8, np.arange(len(val_docs)))
    return train_batches, validation


def small_cfg(**kw) -> TrainConfig:
    base = dict(learning_rate=1e-2, epochs=3, patience=5, save_every_steps=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def params_of(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_one_step_lowers_loss_and_ignores_filler_rows(data):
    train_batches, _ = data
    batch = train_batches(0)[0]
    model = tiny_model(word_dropout=0.0, logit_dropout=0.0, conv_dropout=0.0)
    before = loop.evaluate(model, [batch])["loss"]
    model.train()
    opt = optim.make_optimizer(model, small_cfg(learning_rate=3e-2))
    loop.train_step(model, opt, batch.tokens, batch.labels, loop.row_weights(batch))
    after = loop.evaluate(model, [batch])["loss"]
    assert after < before

    # The same step on a batch with extra filler rows (garbage tokens/labels, doc_index -1).
    rng = np.random.default_rng(0)
    filler = Batch(
        np.concatenate([batch.tokens, rng.integers(1, VOCAB, (4, batch.tokens.shape[1]))]).astype(
            np.int32
        ),
        np.concatenate([batch.labels, rng.integers(0, CLASSES, 4)]).astype(np.int32),
        np.concatenate([batch.doc_index, -np.ones(4, np.int64)]),
    )
    outs = []
    for b in (batch, filler):
        m = tiny_model(word_dropout=0.0, logit_dropout=0.0, conv_dropout=0.0)
        o = optim.make_optimizer(m, small_cfg())
        loss_sum, correct = loop.train_step(m, o, b.tokens, b.labels, loop.row_weights(b))
        outs.append((params_of(m), float(loss_sum), float(correct)))
    for a, b in zip(outs[0][0], outs[1][0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert outs[0][1:] == pytest.approx(outs[1][1:], rel=1e-5)


def _clip_reference(grads, mode, threshold):
    if mode == "norm":
        norm = np.sqrt(sum(float(np.sum(np.square(g))) for g in grads))
        return [g * min(1.0, threshold / norm) for g in grads]
    if mode == "value":
        return [np.clip(g, -threshold, threshold) for g in grads]
    return grads


def _adam_reference(grad_seq, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Textbook Adam in numpy float64; returns the updates of each step."""
    m = [np.zeros_like(g) for g in grad_seq[0]]
    v = [np.zeros_like(g) for g in grad_seq[0]]
    updates = []
    for t, grads in enumerate(grad_seq, start=1):
        step = []
        for k, g in enumerate(grads):
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            mhat, vhat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            step.append(-lr * mhat / (np.sqrt(vhat) + eps))
        updates.append(step)
    return updates


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("mode,threshold", [("norm", 10.0), ("value", 50.0), ("none", 0.0)])
def test_clipping_modes_match_reference(mode, threshold, x64):
    rng = np.random.default_rng(3)
    dtype = np.float64 if x64 else np.float32
    # Gradients of very different scales, so that clipping changes the Adam trajectory.
    grad_seq = [[rng.normal(0, s, (4, 3)), rng.normal(0, s, (5,))] for s in (200.0, 1.0, 30.0)]
    with jax.enable_x64(x64):
        tx = optim.make_tx(small_cfg(clip=mode, clip_threshold=threshold or 1.0, learning_rate=0.1))
        params = [jnp.zeros(g.shape, dtype) for g in grad_seq[0]]
        state = tx.init(params)
        got = []
        for grads in grad_seq:
            upd, state = tx.update([jnp.asarray(g, dtype) for g in grads], state, params)
            got.append([np.asarray(u, np.float64) for u in upd])
    want = _adam_reference([_clip_reference(g, mode, threshold) for g in grad_seq], 0.1)
    unclipped = _adam_reference(grad_seq, 0.1)
    tol = 1e-10 if x64 else 2e-5
    for g_step, w_step in zip(got, want, strict=True):
        for g, w in zip(g_step, w_step, strict=True):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    if mode != "none":  # the reference really differs from plain Adam, so clipping was exercised
        assert max(np.abs(u - w).max() for u, w in zip(unclipped[2], want[2], strict=True)) > 1e-3


def test_plateau_decision_matches_reference_rule():
    rng = np.random.default_rng(5)
    for patience, lr_patience in [(5, 0), (3, 1), (10, 0)]:
        cfg = small_cfg(patience=patience, lr_decay_patience=lr_patience, epochs=50)
        accs = np.round(rng.uniform(0.4, 0.6, 40), 2)
        counters = {
            "best_validation_accuracy": -1.0,
            "epochs_without_improvement": 0,
            "plateau_epochs": 0,
        }
        best, since_best, since_reset, lr = -1.0, 0, 0, 1.0
        for acc in accs:
            d = loop.plateau_decision(counters, float(acc), cfg)
            counters = d.counters
            lr = lr * 0.5 if d.halve_lr else lr
            # Reference: torch ReduceLROnPlateau(mode=max, patience=lr_patience, threshold=0) +
            # AllenNLP-style early stopping.
            if acc > best:
                best, since_best, since_reset = acc, 0, 0
                want_halve = False
            else:
                since_best += 1
                since_reset += 1
                want_halve = since_reset > lr_patience
                if want_halve:
                    since_reset = 0
            assert d.halve_lr == want_halve
            assert d.stop == (since_best >= patience)
            assert counters["best_validation_accuracy"] == best
            if d.stop:
                break


def test_lr_halving_and_early_stopping_in_fit(tmp_path, data):
    train_batches, validation = data
    # A negligible learning rate keeps validation accuracy fixed: epoch 1 is the best, every later
    # epoch is a plateau (LR halves) and training stops after `patience` such epochs.
    cfg = small_cfg(learning_rate=1e-12, epochs=20, patience=3)
    result = loop.fit(tiny_model(), cfg, train_batches, validation, str(tmp_path))
    lrs = [r["learning_rate"] for r in result.history]
    assert result.epochs_run == 4 and result.stopped_early
    # Each record holds the LR used during that epoch; it halves after each non-improving epoch.
    np.testing.assert_allclose(lrs, [1e-12, 1e-12, 5e-13, 2.5e-13], rtol=1e-6)
    assert [r["best"] for r in result.history] == [True, False, False, False]
    assert result.best_epoch == 1
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 4


def test_same_seed_gives_identical_params_and_training_learns(tmp_path, data):
    train_batches, validation = data
    cfg = small_cfg(epochs=2)
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        model = tiny_model(seed)
        result = loop.fit(model, cfg, train_batches, validation, str(tmp_path / name))
        runs.append((params_of(model), result))
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(runs[0][0], runs[2][0], strict=True))
    hist = runs[0][1].history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert runs[0][1].best_validation_accuracy > 0.5  # chance is 1/3


def test_checkpoint_round_trip_is_bit_identical(tmp_path, data):
    train_batches, _ = data
    model = tiny_model(0)
    opt = optim.make_optimizer(model, small_cfg())
    model.train()
    for batch in train_batches(0)[:2]:
        loop.train_step(model, opt, batch.tokens, batch.labels, loop.row_weights(batch))
    optim.set_learning_rate(opt, 0.123)
    ckpt = checkpoint.RunCheckpoints(str(tmp_path))
    ckpt.save("latest", 2, model, {"progress": {"x": 1}}, opt=opt)
    ckpt.close()

    fresh = tiny_model(7)
    fresh_opt = optim.make_optimizer(fresh, small_cfg())
    meta = checkpoint.RunCheckpoints(str(tmp_path)).restore("latest", fresh, fresh_opt)
    assert meta == {"progress": {"x": 1}}
    for want, got in ((model, fresh), (opt, fresh_opt)):
        a = jax.tree.leaves(nnx.state(want))
        b = jax.tree.leaves(nnx.state(got))
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                x, y = jax.random.key_data(x), jax.random.key_data(y)
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert optim.get_learning_rate(fresh_opt) == pytest.approx(0.123)


class _Interrupting(list):
    """A batch list that raises when the loop reaches a given index (simulates a crash)."""

    def __init__(self, batches, stop_at):
        super().__init__(batches)
        self.stop_at = stop_at

    def __getitem__(self, i):
        if i == self.stop_at:
            raise KeyboardInterrupt(f"simulated interruption at batch {i}")
        return super().__getitem__(i)


def test_resume_after_mid_epoch_interruption_matches_uninterrupted(tmp_path, data):
    train_batches, validation = data
    cfg = small_cfg(epochs=3, save_every_steps=2)
    full_model = tiny_model(0)
    full = loop.fit(full_model, cfg, train_batches, validation, str(tmp_path / "full"))

    def crashing(epoch):
        batches = train_batches(epoch)
        return _Interrupting(batches, 3) if epoch == 1 else batches

    with pytest.raises(KeyboardInterrupt):
        loop.fit(tiny_model(0), cfg, crashing, validation, str(tmp_path / "resumed"))
    resumed_model = tiny_model(123)  # fresh weights: everything must come from the checkpoint
    resumed = loop.fit(resumed_model, cfg, train_batches, validation, str(tmp_path / "resumed"))
    steps_per_epoch = len(train_batches(0))
    # The crash comes after 3 steps of epoch 2; the last save is at the last multiple of 2 before.
    assert resumed.resumed_from_step == (steps_per_epoch + 3) // 2 * 2
    for a, b in zip(params_of(full_model), params_of(resumed_model), strict=True):
        np.testing.assert_array_equal(a, b)
    keys = ("train_loss", "train_accuracy", "validation_accuracy", "learning_rate", "step")
    for r_full, r_res in zip(full.history, resumed.history, strict=True):
        for k in keys:
            assert r_full[k] == pytest.approx(r_res[k], rel=1e-6), k
    # Re-running a finished run does not train again.
    again = loop.fit(tiny_model(5), cfg, train_batches, validation, str(tmp_path / "resumed"))
    assert again.steps == resumed.steps and again.resumed_from_step == resumed.steps


def test_paper_presets():
    han = paper_preset("yahoo_answers_10k", "han_rnn")
    assert (han.train.learning_rate, han.train.clip, han.train.clip_threshold) == (4e-4, "norm", 10)
    assert (han.train.epochs, han.train.patience, han.train.max_cells_per_batch) == (15, 5, 16000)
    assert dataclasses.astuple(han.dropouts) == (0.444, 0.220, 0.375)
    flan_noenc = paper_preset("yahoo", "flan_noenc")
    assert (flan_noenc.train.epochs, flan_noenc.train.patience) == (60, 10)
    assert flan_noenc.dropouts.logit_dropout == 0.446
    amazon_rnn, amazon_conv = paper_preset("amazon", "han_rnn"), paper_preset("amazon", "han_conv")
    assert (amazon_rnn.train.clip, amazon_rnn.train.clip_threshold) == ("value", 50.0)
    assert amazon_conv.train.clip == "norm"
    assert paper_preset("yelp", "flan_rnn").train.max_cells_per_batch == 90000
    with pytest.raises(ValueError, match="Unknown architecture"):
        paper_preset("yahoo", "lstm")
    with pytest.raises(ValueError, match="clip"):
        TrainConfig(clip="l2")


def test_compile_seconds_recorded_and_restored_best_model_reuses_compiled_shapes(tmp_path, data):
    train_batches, validation = data
    model = tiny_model(3)
    result = loop.fit(model, small_cfg(epochs=2), train_batches, validation, str(tmp_path))
    first, second = (r["compile_seconds"] for r in result.history)
    assert first > 0.0 and second < first  # the second epoch reuses the first one's programs
    assert result.compile_seconds == pytest.approx(first + second)
    ckpt = checkpoint.RunCheckpoints(str(tmp_path))
    try:
        ckpt.restore(checkpoint.BEST, model)
    finally:
        ckpt.close()
    with loop.CompileTimer() as timer:
        loop.evaluate(model, validation)
    assert timer.compilations == 0  # restored (committed) arrays hit the same jit cache entries


def test_packed_han_training_matches_padded_batches(tmp_path):
    from attn_interp.data.batching import PackConfig

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, size=(6, 3, 5)).astype(np.int32)
    tokens[np.arange(5)[None, None] >= rng.integers(1, 6, (6, 3))[..., None]] = 0
    tokens[0, 2:] = 0
    batches = [Batch(tokens, rng.integers(0, CLASSES, 6).astype(np.int32), np.arange(6))]
    cfg = small_cfg(epochs=2)
    results = []
    for name, pack in (("padded", None), ("packed", PackConfig(docs=8, sentences=4, width=8))):
        model = tiny_model(1, arch="han_rnn", word_dropout=0.0, sentence_dropout=0.0, logit_dropout=0.0)  # fmt: skip
        fit = loop.fit(model, cfg, lambda e: batches, batches, str(tmp_path / name), pack=pack)
        results.append((params_of(model), [h["train_loss"] for h in fit.history]))
        assert loop.predict(model, batches, pack=pack)[0].tolist() == list(range(6))
    for a, b in zip(results[0][0], results[1][0], strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)


def test_scale_batch_for_accelerators():
    from attn_interp.train.config import scale_batch

    cfg = paper_preset("yahoo", "han_rnn").train
    big = scale_batch(cfg, 4)
    assert (big.batch_size, big.max_cells_per_batch) == (4 * cfg.batch_size, 4 * cfg.max_cells_per_batch)  # fmt: skip
    assert big.learning_rate == pytest.approx(2 * cfg.learning_rate)  # sqrt(4)
    assert dataclasses.replace(big, batch_size=64, max_cells_per_batch=cfg.max_cells_per_batch, learning_rate=cfg.learning_rate) == cfg  # fmt: skip
    assert scale_batch(cfg, 1) is cfg
    with pytest.raises(ValueError, match="positive int"):
        scale_batch(cfg, 0)
