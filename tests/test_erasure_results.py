"""The typed results contract: `SuiteResults` fields, the flat results.npz form, selection and
joining of documents, and a head whose parameters are a dynamic argument (`head_state`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import make_inputs

from attn_interp.erasure import ErasureConfig, SuiteResults, from_flat, run_suite, to_flat
from attn_interp.erasure.results import COMPARISONS, concatenate_results, take_documents

CFG = ErasureConfig(num_random=2, aopc=True, sufficiency=True)


def _assert_same(a: SuiteResults, b: SuiteResults) -> None:
    fa, fb = to_flat(a), to_flat(b)
    assert list(fa) == list(fb)
    for key in fa:
        assert fa[key].dtype == fb[key].dtype, key
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fields_are_named_and_the_flat_form_round_trips(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        values, scores, mask, w, bias = make_inputs(3, dtype)
        res = run_suite(values, scores, mask, affine=(w, bias), config=CFG)
    assert res.docs.p_predicted.dtype == np.dtype(dtype)
    b, n_items = mask.shape[0], int(np.sum(mask))
    assert res.docs.seq_len.tolist() == np.sum(mask, -1).tolist()
    assert list(res.rankings) == [*CFG.rankings, "random0", "random1"]
    assert all(c.k.shape == (b,) and c.aopc_suff is not None for c in res.rankings.values())
    assert res.items.alpha.shape == (n_items,)
    assert res.items.curves["attention"].order.shape == (n_items,)
    # delta = top minus random, the flat "delta_js" column
    flat = to_flat(res)
    for comp in COMPARISONS:
        np.testing.assert_array_equal(flat[f"{comp.prefix}delta_js"], res.delta(comp))
    _assert_same(from_flat(flat), res)
    # A results.npz without per-item arrays (as merged for the statistics) has items None.
    no_items = from_flat({k: v for k, v in flat.items() if not k.startswith("items/")})
    assert no_items.items is None and no_items.rankings.keys() == res.rankings.keys()
    # Columns added by callers survive the round trip, after the suite's own.
    labelled = res.with_extra(label=np.arange(b))
    assert list(to_flat(labelled))[-1] == "label"
    np.testing.assert_array_equal(from_flat(to_flat(labelled)).extra["label"], np.arange(b))


def test_lean_config_leaves_optional_fields_out():
    values, scores, mask, w, bias = make_inputs(4, jnp.float32)
    lean = ErasureConfig(
        num_random=0, aopc=False, sufficiency=False, minimum_flip_set=False, store_item_arrays=False
    )
    res = run_suite(values, scores, mask, affine=(w, bias), config=lean)
    assert res.items is None and res.min_flip is None
    curve = res.rankings["attention"]
    assert curve.gap is None and curve.aopc_comp is None and curve.aopc_suff is None
    assert not any(k.startswith(("items/", "k_min")) for k in to_flat(res))


def test_take_and_concatenate_equal_one_call():
    values, scores, mask, w, bias = make_inputs(5, jnp.float32)
    ids = np.arange(mask.shape[0]) + 10
    whole = run_suite(values, scores, mask, affine=(w, bias), config=CFG, doc_ids=ids)
    parts = [
        run_suite(values[s], scores[s], mask[s], affine=(w, bias), config=CFG, doc_ids=ids[s])
        for s in (slice(0, 4), slice(4, None))
    ]
    joined = concatenate_results(parts)
    assert list(to_flat(joined)) == list(to_flat(whole))
    for key, value in to_flat(whole).items():
        np.testing.assert_allclose(to_flat(joined)[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    rows = np.array([6, 0, 3])
    picked = take_documents(whole, rows)
    np.testing.assert_array_equal(picked.docs.doc_id, ids[rows])
    offsets = whole.item_offsets()
    want = np.concatenate([whole.items.alpha[offsets[r] : offsets[r + 1]] for r in rows])
    np.testing.assert_array_equal(picked.items.alpha, want)


def test_from_flat_names_a_missing_column():
    with pytest.raises(ValueError, match="seq_len"):
        from_flat({"doc_id": np.zeros(2)})


class _Head(nnx.Module):
    def __init__(self, d: int, c: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(d, 8, rngs=rngs)
        self.out = nnx.Linear(8, c, rngs=rngs)

    def __call__(self, values, weights):
        pooled = jnp.einsum("bn,bnd->bd", weights, values)
        return self.out(jnp.tanh(self.hidden(pooled)))


def _apply(graphdef, state, values, weights):
    return nnx.merge(graphdef, state)(values, weights)


def test_head_state_is_a_dynamic_argument_with_the_closure_results():
    """The mask path with the parameters as `head_state` equals the head closed over them; each
    model's own parameters are used."""
    import functools

    values, scores, mask, _, _ = make_inputs(6, jnp.float32)
    cfg = ErasureConfig(num_random=1, method="mask")
    results = []
    for seed in (0, 1):
        graphdef, state = nnx.split(_Head(values.shape[2], 4, nnx.Rngs(seed)))

        def closed(v, a, graphdef=graphdef, state=state):
            return _apply(graphdef, state, v, a)

        head = functools.partial(_apply, graphdef)
        dyn = run_suite(values, scores, mask, head=head, head_state=state, config=cfg)
        _assert_same(dyn, run_suite(values, scores, mask, head=closed, config=cfg))
        results.append(dyn)
    assert not np.array_equal(results[0].docs.p_predicted, results[1].docs.p_predicted)


def test_packing_round_trips_every_field_by_dtype():
    """The kernel's fields cross to the host as one buffer per dtype and come back equal, with
    their shapes, dtypes and the pytree's structure (None fields stay None)."""
    from attn_interp.erasure import packing

    rng = np.random.default_rng(0)
    b = 5
    tree = {
        "a": rng.normal(size=(b, 3, 4)).astype(np.float32),
        "b": (rng.integers(-5, 5, (b,)).astype(np.int32), None),
        "c": rng.random((b, 2)) < 0.5,
        "d": rng.normal(size=(b, 1)).astype(np.float32),
        "e": rng.integers(0, 9, (b, 2, 2)).astype(np.int32),
    }
    buffers = jax.jit(packing.pack)(jax.tree.map(jnp.asarray, tree))
    assert [x.shape for x in buffers] == [(b, 13), (b, 5), (b, 2)]  # float32, int32, bool
    got = packing.unpack(jax.device_get(buffers), packing.layout(tree))
    assert jax.tree.structure(got) == jax.tree.structure(tree)
    for want, have in zip(jax.tree.leaves(tree), jax.tree.leaves(got), strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)
