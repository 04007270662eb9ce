"""run_suite end to end: closed form = mask path = sequential reference; chunking; MLP head;
random modes; summarize on a hand-checkable example; write_outputs files."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import affine_head, assert_minimum_bounds_every_ranking, make_inputs

from attn_interp.erasure import (
    ErasureConfig,
    from_flat,
    run_suite,
    summarize,
    to_flat,
    write_outputs,
)
from attn_interp.erasure.gradients import attention_gradient
from attn_interp.erasure.reference import SequentialReference
from attn_interp.models.attention import masked_softmax

COMPARED = ("attention", "attention_asc", "gradient", "grad_x_attention", "random0", "random1")
CFG = ErasureConfig(num_random=2)


def random_orders(results, b, n):
    return np.stack(
        [
            np.stack(
                [
                    np.r_[o, np.setdiff1d(np.arange(n), o)]
                    for o in np.split(
                        results[f"items/order_random{i}"], np.cumsum(results["seq_len"])[:-1]
                    )
                ]
            )
            for i in range(2)
        ],
        axis=1,
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_suite_closed_form_mask_path_and_reference_agree(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        values, scores, mask, w, bias = make_inputs(10, dtype)
        head = affine_head(w, bias)
        closed = to_flat(run_suite(values, scores, mask, head=head, affine=(w, bias), config=CFG))
        masked = to_flat(
            run_suite(
                values,
                scores,
                mask,
                head=head,
                affine=(w, bias),
                config=ErasureConfig(num_random=2, method="mask"),
            )
        )
        b, n = mask.shape
        alpha = masked_softmax(scores, mask)
        ref = SequentialReference(head).suite(
            values, alpha, mask, closed["predicted"], random_orders(closed, b, n)
        )
    tol = 1e-9 if dtype == jnp.float64 else 2e-5
    assert set(closed) == set(masked)
    for key in closed:
        a, m = closed[key], masked[key]
        if key in ("js_clipped", "kl_clipped"):  # round-off artefacts: counts may differ
            continue
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, m, rtol=tol * 10, atol=tol, equal_nan=True, err_msg=key)
        else:
            np.testing.assert_array_equal(a, m, err_msg=key)
    for name in COMPARED:
        for col in ("k", "probmass", "frac"):
            np.testing.assert_allclose(
                closed[f"rank_{name}_{col}"],
                ref[f"rank_{name}_{col}"],
                atol=tol,
                err_msg=(name, col),
            )
    mask_np = np.asarray(mask)
    np.testing.assert_allclose(closed["items/single_js"], ref["single_js"][mask_np], atol=tol)
    np.testing.assert_allclose(closed["items/gradient"], ref["gradient"][mask_np], atol=tol)
    # Top-attention single erasure: flip class or -1, as the reference.
    top = closed["single_top_index"]
    ok = top >= 0
    want = ref["single_pred"][np.arange(b), np.maximum(top, 0)]
    want = np.where(want != closed["predicted"], want, -1)
    np.testing.assert_array_equal(closed["single_top_flip"][ok], want[ok])
    # Invariants: k_min is a lower bound for every ranking; i* has the largest weight; r != i*.
    assert_minimum_bounds_every_ranking(closed)
    assert_minimum_bounds_every_ranking(masked)
    multi = closed["seq_len"] > 1
    assert (closed["single_rand_index"][multi] != top[multi]).all()
    assert (closed["single_rand_index"][~multi] == -1).all()
    per_doc_max = np.maximum.reduceat(
        closed["items/alpha"], np.r_[0, np.cumsum(closed["seq_len"])[:-1]][closed["seq_len"] > 0]
    )
    np.testing.assert_allclose(closed["single_top_weight"][closed["seq_len"] > 0], per_doc_max)
    assert closed["items/alpha"].shape == (closed["seq_len"].sum(),)
    assert not closed["prediction_mismatch"].any()


def test_chunked_equals_unchunked_and_batches_concatenate():
    values, scores, mask, w, bias = make_inputs(11, jnp.float32)
    full = to_flat(run_suite(values, scores, mask, affine=(w, bias), config=CFG))
    chunked = to_flat(
        run_suite(
            values,
            scores,
            mask,
            affine=(w, bias),
            config=ErasureConfig(num_random=2, memory_budget_bytes=30_000),
        )
    )
    assert_minimum_bounds_every_ranking(full)
    for key in full:
        np.testing.assert_array_equal(full[key], chunked[key], err_msg=key)
    # Two calls with distinct doc ids concatenate to the one-call results (items included).
    from attn_interp.erasure import concatenate_results

    ids = np.arange(mask.shape[0])
    parts = [
        run_suite(values[s], scores[s], mask[s], affine=(w, bias), config=CFG, doc_ids=ids[s])
        for s in (slice(0, 4), slice(4, None))
    ]
    joined = to_flat(concatenate_results(parts))
    for key in full:
        np.testing.assert_allclose(
            full[key], joined[key], rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=key
        )


def _scatter(rng, width, mask, *arrays):
    """Each row's valid items moved to sorted random positions of a wider row (padding between
    them). Returns (positions `[batch, n]` of the k-th valid item, mask, the moved arrays)."""
    b, n = mask.shape
    pos = np.zeros((b, n), np.int64)
    out_mask = np.zeros((b, width), bool)
    moved = [np.zeros((b, width, *np.shape(a)[2:]), np.asarray(a).dtype) for a in arrays]
    for i, length in enumerate(mask.sum(-1)):
        pos[i, :length] = np.sort(rng.choice(width, size=length, replace=False))
        out_mask[i, pos[i, :length]] = True
        for src, dst in zip(arrays, moved, strict=True):
            dst[i, pos[i, :length]] = np.asarray(src)[i, :length]
    return pos, out_mask, moved


@pytest.mark.parametrize("mode, method", [("paper", "closed_form"), ("code_compatible", "mask")])
def test_non_prefix_masks_give_the_results_of_the_compacted_documents(mode, method):
    """Valid positions anywhere (not a prefix): r and every random ordering are drawn among the
    valid positions, and every result equals the compacted document's at the mapped positions."""
    with jax.enable_x64(True):
        values, scores, mask, w, bias = make_inputs(12, jnp.float64)
        mask = np.asarray(mask)
        pos, wide_mask, (wide_values, wide_scores) = _scatter(
            np.random.default_rng(0), mask.shape[1] + 5, mask, values, scores
        )
        kw = dict(head=affine_head(w, bias), affine=(w, bias))
        cfg = ErasureConfig(num_random=2, random_mode=mode, method=method)
        compact = to_flat(run_suite(values, scores, mask, config=cfg, **kw))
        wide = to_flat(run_suite(wide_values, wide_scores, wide_mask, config=cfg, **kw))
    assert set(compact) == set(wide)
    doc_of_item = np.repeat(np.arange(len(mask)), compact["seq_len"])
    for key, want in compact.items():
        if key.startswith("single_") and key.endswith("_index"):
            want = np.where(want >= 0, pos[np.arange(len(want)), want], -1)
            ok = want >= 0
            assert wide_mask[np.flatnonzero(ok), want[ok]].all(), key
        elif key.startswith("items/order_"):
            want = pos[doc_of_item, want]
        if want.dtype.kind == "f":
            np.testing.assert_allclose(wide[key], want, rtol=1e-9, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(wide[key], want, err_msg=key)


def test_mlp_head_through_the_mask_path_matches_the_reference():
    values, scores, mask, _, _ = make_inputs(12, jnp.float32)
    rng = np.random.default_rng(0)
    w1, b1 = (
        jnp.asarray(rng.normal(size=(8, 8)), jnp.float32),
        jnp.asarray(rng.normal(size=8), jnp.float32),
    )
    w2, b2 = (
        jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
        jnp.asarray(rng.normal(size=4), jnp.float32),
    )

    def mlp_head(v, weights):
        return jnp.tanh(jnp.einsum("bn,bnd->bd", weights, v) @ w1 + b1) @ w2 + b2

    res = to_flat(run_suite(values, scores, mask, head=mlp_head, config=CFG))
    assert "k_min" not in res and "rank_norm_k" not in res
    b, n = mask.shape
    alpha = masked_softmax(scores, mask)
    ref = SequentialReference(mlp_head).suite(
        values, alpha, mask, res["predicted"], random_orders(res, b, n)
    )
    for name in COMPARED:
        np.testing.assert_array_equal(res[f"rank_{name}_k"], ref[f"rank_{name}_k"], err_msg=name)
    np.testing.assert_allclose(res["items/gradient"], ref["gradient"][np.asarray(mask)], atol=1e-5)
    np.testing.assert_allclose(
        res["items/single_js"], ref["single_js"][np.asarray(mask)], atol=1e-5
    )
    # Finite differences of p_yhat through the MLP (float64).
    with jax.enable_x64(True):
        v64, a64 = jnp.asarray(values, jnp.float64), jnp.asarray(alpha, jnp.float64)
        g = np.asarray(attention_gradient(mlp_head, v64, a64, mask, jnp.asarray(res["predicted"])))
        i, j, eps = 0, 2, 1e-6
        e = jnp.zeros_like(a64).at[i, j].set(eps)
        y = res["predicted"][i]
        fd = (
            jax.nn.softmax(mlp_head(v64, a64 + e))[i, y]
            - jax.nn.softmax(mlp_head(v64, a64 - e))[i, y]
        ) / (2 * eps)
        np.testing.assert_allclose(g[i, j], fd, rtol=1e-5)


def test_code_compatible_mode_external_r_and_extra_rankings():
    values, scores, mask, w, bias = make_inputs(13, jnp.float32)
    cfg = ErasureConfig(num_random=2, random_mode="code_compatible")
    alpha = np.asarray(masked_softmax(scores, mask))
    res = to_flat(
        run_suite(
            values, scores, mask, affine=(w, bias), config=cfg, extra_rankings={"mine": alpha}
        )
    )
    assert_minimum_bounds_every_ranking(res)
    multi = res["seq_len"] > 1
    r = res["single_rand_index"]
    assert (r[multi] >= 1).all() and (r[multi] < res["seq_len"][multi]).all()
    np.testing.assert_array_equal(res["rank_mine_k"], res["rank_attention_k"])
    given = np.where(multi, res["seq_len"] - 1, 0)
    ext = to_flat(run_suite(values, scores, mask, affine=(w, bias), config=cfg, r_indices=given))
    np.testing.assert_array_equal(ext["single_rand_index"][multi], given[multi])
    np.testing.assert_array_equal(ext["single_gxa_rand_index"][multi], given[multi])
    with pytest.raises(ValueError, match="r_indices"):
        run_suite(
            values, scores, mask, affine=(w, bias), config=cfg, r_indices=np.full(mask.shape[0], 50)
        )
    with pytest.raises(ValueError, match="kernel"):
        run_suite(values, scores, mask, affine=(w.T, bias), config=cfg)


def _hand_results():
    """Six instances: two excluded (n = 1 and n = 0), four included."""
    r = {
        "doc_id": np.arange(6),
        "seq_len": np.array([3, 1, 4, 2, 5, 0]),
        "prediction_mismatch": np.array([False, False, True, False, False, False]),
        "js_clipped": np.array([1, 0, 0, 2, 0, 0]),
        "kl_clipped": np.zeros(6, int),
        "k_min": np.array([1, -1, 2, -1, 2, -1]),
    }
    r["rank_attention_k"] = np.array([1, -1, 3, -1, -1, -1])
    r["rank_gradient_k"] = np.array([2, -1, 2, -1, 4, -1])
    r["rank_grad_x_attention_k"] = np.array([1, -1, -1, -1, 2, -1])
    for name in ("attention", "gradient", "grad_x_attention"):
        k = r[f"rank_{name}_k"]
        r[f"rank_{name}_frac"] = np.where(k > 0, k / np.maximum(r["seq_len"], 1), -1.0)
        r[f"rank_{name}_probmass"] = np.where(k > 0, 0.5, -1.0)
    flips = {  # (top flip, random flip) per instance
        "": ([2, -1, -1, 1, 0, -1], [-1, 1, 3, 1, -1, -1]),
        "grad_": ([1, -1, 1, -1, -1, -1], [1, -1, -1, -1, 2, -1]),
        "gxa_": ([-1, -1, -1, -1, -1, -1], [-1, -1, -1, -1, -1, -1]),
    }
    for prefix, (ft, fr) in flips.items():
        stem = {"": "", "grad_": "grad_", "gxa_": "gxa_"}[prefix]
        r[f"single_{stem}top_flip"] = np.array(ft)
        r[f"single_{stem}rand_flip"] = np.array(fr)
        r[f"{prefix}delta_js"] = np.array([0.1, 0.0, -0.2, 0.3, -0.01, np.nan])
    # Columns the statistics above do not read, so that the dict is a complete results.npz.
    zeros = np.zeros(6, int)
    r.update(predicted=zeros, predicted_head=zeros, p_predicted=np.ones(6))
    r["k_min_frac"] = np.where(r["k_min"] > 0, r["k_min"] / np.maximum(r["seq_len"], 1), -1.0)
    for prefix in flips:
        for which, js in (("top", r[f"{prefix}delta_js"]), ("rand", np.zeros(6))):
            r.update({f"single_{prefix}{which}_{c}": zeros for c in ("index", "weight", "kl")})
            r[f"single_{prefix}{which}_js"] = js  # top minus random is the delta above
    return r


def test_summarize_on_a_hand_checkable_example():
    r = _hand_results()
    s = summarize(from_flat(r))
    inc = [0, 2, 3, 4]
    assert s["counts"] == {
        "total": 6,
        "included_n_gt_1": 4,
        "excluded_n_eq_1": 1,
        "excluded_empty": 1,
    }
    assert s["prediction_mismatch"]["included"] == 1
    assert s["negative_divergences_clipped"]["js"] == 3
    # Never-flip shares computed directly.
    for name in ("attention", "gradient", "grad_x_attention"):
        want = np.mean([r[f"rank_{name}_k"][i] == -1 for i in inc])
        assert s["never_flip_share"][name] == pytest.approx(want)
    # Table 2, attention: instances 0 (top only), 2 (random only), 3 (both), 4 (top only).
    t = s["table2_percent"]["attention"]
    assert t == pytest.approx({"both": 25.0, "only_top": 50.0, "only_random": 25.0, "neither": 0.0})
    assert s["table2_percent"]["grad_x_attention"]["neither"] == pytest.approx(100.0)
    assert s["delta_js_negative_share"]["attention"] == pytest.approx(0.5)
    # Pairwise attention vs gradient over included: 0: a fewer; 2: gradient fewer;
    # 3: both never (excluded); 4: gradient fewer (attention never).
    pw = s["pairwise"]["attention_vs_gradient"]
    assert pw["denominator"] == 3 and pw["both_never"] == 1
    assert pw["attention_fewer"] == pytest.approx(1 / 3)
    assert pw["other_fewer"] == pytest.approx(2 / 3)
    assert pw["tie"] == pytest.approx(0.0)
    # Attention vs grad x attention: 0 tie, 2 attention fewer, 3 both never, 4 gxa fewer.
    pw2 = s["pairwise"]["attention_vs_grad_x_attention"]
    assert (pw2["attention_fewer"], pw2["other_fewer"], pw2["tie"]) == pytest.approx(
        (1 / 3, 1 / 3, 1 / 3)
    )
    # Provably not optimal: denominator all included (4).
    assert s["attention_provably_not_optimal"]["gradient"] == pytest.approx(2 / 4)
    assert s["attention_provably_not_optimal"]["gradient_or_grad_x_attention"] == pytest.approx(
        2 / 4
    )
    # Exact: attention k > k_min at 2 (3 > 2) and never-but-k_min at 4 -> 2 of 4.
    mfs = s["minimum_flip_set"]
    assert mfs["attention_not_optimal"] == pytest.approx(0.5)
    assert mfs["per_ranking"]["gradient"]["mean_gap"] == pytest.approx(np.mean([1, 0, 2]))
    frac = s["per_ranking"]["attention"]
    assert frac["flipped"] == 2
    assert frac["mean_fraction"] == pytest.approx(np.mean([1 / 3, 3 / 4]))
    json.dumps(s)  # JSON-ready


def test_write_outputs_files_columns_and_rows(tmp_path):
    values, scores, mask, w, bias = make_inputs(10, jnp.float32)
    res = to_flat(run_suite(values, scores, mask, affine=(w, bias), config=CFG))
    assert_minimum_bounds_every_ranking(res)
    out = tmp_path / "run"
    write_outputs(from_flat(res), out, throughput={"evals_per_s": 1.0})
    b = mask.shape[0]
    expected = {
        "first_vs_second.csv": [
            "id",
            "kl_highest",
            "js_highest",
            "dec_flip_highest",
            "kl_2ndhighest",
        ],
        "dec_flip_stats.csv": ["id", "seq_len", "needed_to_rem_x_items_for_decflip_top"],
        "rand_sample_stats.csv": [
            "id",
            "seq_len",
            "attn_weight_extracted_0",
            "attn_weight_extracted_1",
            "kl_div_0",
        ],
        "grad_based_stats.csv": ["id", "seq_len", "needed_to_rem_x_items_for_decflip_grad"],
        "rand_nontop_decflipjs.csv": [
            "id",
            "seq_len",
            "not_negone_if_rand_caused_decflip",
            "zeroed_weight",
            "rand_kl_div",
            "rand_js_div",
        ],
        "rand_nontopbygrad_decflipjs.csv": ["id", "seq_len", "not_negone_if_rand_caused_decflip"],
    }
    for name, cols in expected.items():
        with open(out / name) as f:
            rows = list(csv.reader(f))
        assert rows[0][: len(cols)] == cols, name
        assert len(rows) == b + 1, name
        assert len(set(len(row) for row in rows)) == 1
    with open(out / "dec_flip_stats.csv") as f:
        body = list(csv.DictReader(f))
    assert [int(row["needed_to_rem_x_items_for_decflip_top"]) for row in body] == res[
        "rank_attention_k"
    ].tolist()
    assert [int(row["id"]) for row in body] == (res["doc_id"] + 1).tolist()
    loaded = np.load(out / "results.npz")
    np.testing.assert_array_equal(loaded["items/alpha"], res["items/alpha"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["throughput"] == {"evals_per_s": 1.0}
    assert summary["counts"]["total"] == b
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temporary files left
