"""Data parallelism on 8 fake CPU devices: a sharded training step, `fit` and erasure equal their
single-device counterparts, and the streaming erasure merge equals the in-memory results."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import assert_minimum_bounds_every_ranking, local_data_config
from jax.sharding import NamedSharding

from attn_interp import parallel
from attn_interp.erasure.results import to_flat
from attn_interp.models import ModelConfig, make_model
from attn_interp.train import loop, optim
from attn_interp.train.config import TrainConfig
from attn_interp.types import Batch

pytestmark = pytest.mark.multidevice

VOCAB, CLASSES = 30, 3


def _load_flat(out_dir):
    """(results as the flat results.npz dict the assertions index, summary.json)."""
    from attn_interp.erasure import evaluate as ev

    results, summary = ev.load_erasure_results(out_dir)
    return to_flat(results), summary


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


# ---------------------------------------------------------------------------------------------
# Whole runs: fit + orbax checkpoints on the mesh, erasure over the mesh, streaming merge.

WORDS = "alpha beta gamma delta eps zeta eta theta iota kappa lam mu".split()
SHARD = 4


def _write_split(path, n: int, seed: int, empty_at: tuple[int, ...] = ()) -> None:
    import json

    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            label = int(rng.integers(0, 3))
            words = [*rng.choice(WORDS[label * 4 : label * 4 + 4], 4), *rng.choice(WORDS, 2)]
            text = "<br />" if i in empty_at else " ".join(words[: int(rng.integers(1, 7))]) + "."
            f.write(json.dumps({"text": text, "label": f"c{label}"}) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny flan_conv run trained on one device and data-parallel on 8."""
    from attn_interp.train.run import train_and_evaluate

    root = tmp_path_factory.mktemp("multidevice_runs")
    # test positions 4..7 have no tokens: shard 1 (SHARD = 4) holds no document at all
    for name, n, seed, empty in (
        ("train", 30, 1, ()),
        ("validation", 8, 2, ()),
        ("test", 15, 3, (4, 5, 6, 7)),
    ):
        _write_split(root / f"{name}.jsonl", n, seed, empty)
    data_cfg = local_data_config(root)
    train_cfg = TrainConfig(
        epochs=2, batch_size=8, learning_rate=1e-2, save_every_steps=2, progress=False
    )
    kw = dict(arch="flan_conv", model_overrides={"embed_dim": 8, "hidden": 4}, min_count=1)
    single = train_and_evaluate(data_cfg, train_cfg, str(root / "single"), **kw)
    with parallel.use_mesh(parallel.data_mesh()):
        sharded = train_and_evaluate(data_cfg, train_cfg, str(root / "sharded"), **kw)
    return {"root": root, "single": single, "sharded": sharded}


def test_data_parallel_fit_matches_single_device_and_checkpoints_restore(runs):
    from attn_interp.train.run import load_run

    single, sharded = runs["single"], runs["sharded"]
    assert single["steps"] == sharded["steps"] > 0
    assert single["test_documents"] == sharded["test_documents"] == 11
    np.testing.assert_allclose(sharded["test_loss"], single["test_loss"], rtol=1e-4)
    from attn_interp.train.checkpoint import LATEST, RunCheckpoints

    def last_state(name):
        run = load_run(str(runs["root"] / name), "best")
        opt = optim.make_optimizer(run.model, run.train_config)
        ckpt = RunCheckpoints(run.workdir)
        try:
            meta = ckpt.restore(LATEST, run.model, opt)
        finally:
            ckpt.close()
        return run.model, meta

    (a, meta_a), (b, meta_b) = last_state("single"), last_state("sharded")
    assert meta_a["progress"]["step"] == meta_b["progress"]["step"] == single["steps"]
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def erasure_dirs(runs):
    from attn_interp.erasure import ErasureConfig
    from attn_interp.erasure import evaluate as ev

    workdir = str(runs["root"] / "single")
    cfg = ErasureConfig(num_random=2, memory_budget_bytes=40_000)  # several engine chunks
    out = {}
    for name, mesh in (("one", None), ("mesh", parallel.data_mesh())):
        out[name] = ev.evaluate_run(
            workdir,
            cfg,
            out_dir=str(runs["root"] / f"erasure_{name}"),
            shard_docs=SHARD,
            progress=False,
            mesh=mesh,
        )
    return out


def test_sharded_erasure_equals_single_device(erasure_dirs):

    one, one_summary = _load_flat(erasure_dirs["one"])
    par, par_summary = _load_flat(erasure_dirs["mesh"])
    assert_minimum_bounds_every_ranking(one)
    assert list(one) == list(par)
    assert any(k.startswith("items/") for k in one)
    np.testing.assert_array_equal(one["doc_id"], np.setdiff1d(np.arange(15), [4, 5, 6, 7]))
    for key in one:
        if np.issubdtype(one[key].dtype, np.floating):
            np.testing.assert_allclose(par[key], one[key], rtol=1e-6, atol=1e-7, err_msg=key)
        else:
            np.testing.assert_array_equal(par[key], one[key], err_msg=key)
    assert (
        one_summary["model"]["skipped_no_tokens"] == par_summary["model"]["skipped_no_tokens"] == 4
    )
    assert one_summary["counts"] == par_summary["counts"]


def test_streaming_merge_equals_in_memory_concatenation(erasure_dirs, tmp_path):
    import os

    from attn_interp import run_dirs
    from attn_interp.erasure import evaluate as ev
    from attn_interp.erasure.results import concatenate_results, from_flat

    shard_dir = os.path.join(erasure_dirs["one"], run_dirs.SHARD_DIR)
    paths = sorted(os.path.join(shard_dir, n) for n in os.listdir(shard_dir) if n.endswith(".npz"))
    assert len(paths) == 4
    loaded = []
    for p in paths:
        with np.load(p) as f:
            arrays = {k: f[k] for k in f.files if not k.startswith("shard/")}
        if arrays:
            loaded.append(arrays)
    assert len(loaded) == 3  # the shard of documents without tokens holds no arrays
    expected = to_flat(concatenate_results([from_flat(x) for x in loaded]))
    out = str(tmp_path / "merged.npz")
    per_instance = ev.merge_shards(paths, out)
    with np.load(out) as f:
        merged = {k: f[k] for k in f.files}
    assert list(merged) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(merged[key], value, err_msg=key)
        assert merged[key].dtype == value.dtype
        if not key.startswith("items/"):
            np.testing.assert_array_equal(per_instance[key], value, err_msg=key)
    assert not any(k.startswith("items/") for k in per_instance)
    full = ev.merge_shards(paths, str(tmp_path / "again.npz"), keep_items=True)
    assert set(full) == set(expected)
    # the launcher's results.npz is exactly this merge
    saved = _load_flat(erasure_dirs["one"])[0]
    for key, value in expected.items():
        np.testing.assert_array_equal(saved[key], value, err_msg=key)
    with pytest.raises(ValueError, match="no shard"):
        ev.merge_shards([paths[1]], str(tmp_path / "none.npz"))


@pytest.mark.parametrize("rows", [5, 11])
def test_run_suite_on_a_mesh_equals_one_device(rows):
    """Each device runs the whole suite on its own rows (any batch size; filler rows dropped)."""
    from attn_interp.erasure import ErasureConfig, run_suite

    rng = np.random.default_rng(rows)
    n, d, c = 12, 6, 4
    lengths = rng.integers(1, n + 1, rows)
    mask = np.arange(n)[None, :] < lengths[:, None]
    values = rng.normal(size=(rows, n, d)).astype(np.float32)
    scores = rng.normal(size=(rows, n)).astype(np.float32)
    affine = (rng.normal(size=(d, c)).astype(np.float32), rng.normal(size=c).astype(np.float32))
    cfg = ErasureConfig(num_random=2, memory_budget_bytes=60_000)  # several chunks of 8 rows
    kw = dict(affine=affine, config=cfg, doc_ids=np.arange(rows) + 100)
    par = to_flat(run_suite(values, scores, mask, mesh=parallel.data_mesh(), **kw))
    one = to_flat(run_suite(values, scores, mask, **kw))
    assert_minimum_bounds_every_ranking(one)
    assert_minimum_bounds_every_ranking(par)
    assert list(par) == list(one)
    for key in one:
        if np.issubdtype(one[key].dtype, np.floating):
            np.testing.assert_allclose(par[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(par[key], one[key], err_msg=key)
