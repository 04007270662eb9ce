"""Data parallelism on 8 fake CPU devices: a sharded training step, `fit` and erasure equal their
single-device counterparts, and the streaming erasure merge equals the in-memory results."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding

from attn_interp import parallel
from attn_interp.models import ModelConfig, make_model
from attn_interp.train import loop, optim
from attn_interp.train.config import TrainConfig
from attn_interp.types import Batch

pytestmark = pytest.mark.multidevice

VOCAB, CLASSES = 30, 3


def _tiny_model(arch: str = "flan_conv", seed: int = 0, **kw) -> nnx.Module:
    cfg = ModelConfig(arch, vocab_size=VOCAB, num_classes=CLASSES, embed_dim=8, hidden=4, **kw)
    return make_model(cfg, rngs=nnx.Rngs(seed))


def _batch(rows: int, width: int, seed: int, fillers: int = 0, hier: bool = False) -> Batch:
    """Random documents of random lengths; the last `fillers` rows are filler rows."""
    rng = np.random.default_rng(seed)
    shape = (rows, 3, width) if hier else (rows, width)
    tokens = rng.integers(1, VOCAB, shape).astype(np.int32)
    lengths = rng.integers(1, width + 1, rows)
    cols = np.arange(width)
    keep = cols[None, :] < lengths[:, None]
    tokens = tokens * (keep[:, None, :] if hier else keep)
    if hier:
        tokens[rng.random(rows) < 0.5, 2] = 0  # some documents have two sentences only
    labels = rng.integers(0, CLASSES, rows).astype(np.int32)
    doc_index = np.arange(rows, dtype=np.int64)
    if fillers:
        tokens[-fillers:] = 0
        labels[-fillers:] = 0
        doc_index[-fillers:] = -1
    return Batch(tokens, labels, doc_index)


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_mesh_has_eight_devices_and_rows_are_padded():
    mesh = parallel.data_mesh()
    assert parallel.data_size(mesh) == len(jax.devices()) == 8
    a, b = parallel.pad_rows(8, np.arange(5), np.ones((5, 2)), fill=(-1, 0))
    assert a.shape == (8,) and b.shape == (8, 2)
    np.testing.assert_array_equal(a, [0, 1, 2, 3, 4, -1, -1, -1])
    assert b[5:].sum() == 0
    (x,) = parallel.shard_rows(mesh, np.arange(16).reshape(8, 2))
    assert isinstance(x.sharding, NamedSharding) and len(x.addressable_shards) == 8
    assert x.addressable_shards[3].data.shape == (1, 2)
    with pytest.raises(ValueError, match="pad_rows"):
        parallel.shard_rows(mesh, np.arange(6))
    with pytest.raises(ValueError, match="coordinator_address"):
        parallel.DistributedConfig(num_processes=2, process_id=0)
    assert parallel.initialize_distributed(parallel.DistributedConfig()) is False


@pytest.mark.parametrize(
    ("arch", "dropout", "rows", "fillers"),
    [("flan_conv", 0.3, 16, 3), ("han_rnn", 0.0, 12, 2)],  # 12 rows: 4 filler rows are added
)
def test_sharded_train_step_equals_single_device(arch, dropout, rows, fillers):
    cfg = TrainConfig(learning_rate=1e-2)
    kw = dict(word_dropout=dropout, sentence_dropout=dropout, logit_dropout=dropout)
    single, sharded = _tiny_model(arch, **kw), _tiny_model(arch, **kw)
    opt_s, opt_p = optim.make_optimizer(single, cfg), optim.make_optimizer(sharded, cfg)
    mesh = parallel.data_mesh()
    parallel.replicate(sharded, mesh)
    parallel.replicate(opt_p, mesh)
    single.train()
    sharded.train()
    for step in range(2):
        batch = _batch(rows, 8, seed=step, fillers=fillers, hier=arch.startswith("han"))
        tokens, labels, w, _ = loop.place_batch(batch, None)
        ref = loop.train_step(single, opt_s, tokens, labels, w)
        tokens, labels, w, doc_index = loop.place_batch(batch, mesh)
        assert tokens.shape[0] % 8 == 0 and (doc_index < 0).sum() >= fillers
        out = loop.train_step(sharded, opt_p, tokens, labels, w)
        np.testing.assert_allclose(np.asarray(out[0]), np.asarray(ref[0]), rtol=2e-5, atol=1e-6)
        assert float(out[1]) == float(ref[1])
    for a, b in zip(_params(single), _params(sharded), strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-6)
    leaf = jax.tree.leaves(nnx.state(sharded, nnx.Param))[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8
