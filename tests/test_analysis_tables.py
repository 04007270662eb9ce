"""Tables and claims of attn_interp.analysis on synthetic erasure results (run_suite on random
arrays); every number is recomputed here from the per-instance arrays with plain loops."""

import math

import numpy as np
import pytest

from attn_interp import analysis
from attn_interp.erasure import ErasureConfig, run_suite, to_flat

B, N, D, C = 48, 6, 8, 3


def synthetic_results(seed: int, dtype=np.float32) -> dict:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(B, N, D)).astype(dtype)
    scores = (2.0 * rng.normal(size=(B, N))).astype(dtype)
    lengths = rng.integers(1, N + 1, size=B)
    lengths[:3] = 1  # some n = 1 documents, excluded from every erasure statistic
    mask = np.arange(N)[None, :] < lengths[:, None]
    kernel = rng.normal(size=(D, C)).astype(dtype)
    bias = (0.5 * rng.normal(size=C)).astype(dtype)
    cfg = ErasureConfig(num_random=1, rankings=("attention", "gradient", "grad_x_attention"))
    return run_suite(values, scores, mask, affine=(kernel, bias), config=cfg)


@pytest.fixture(scope="module")
def models():
    return [
        analysis.ModelResults("ds_a", "han_rnn", synthetic_results(0), test_accuracy=0.625),
        analysis.ModelResults("ds_a", "flan_conv", synthetic_results(1)),
        analysis.ModelResults("ds_b", "han_rnn", synthetic_results(2), test_accuracy=0.5),
    ]


def _row(table, dataset, model, **extra):
    rows = [
        r
        for r in table.as_dicts()
        if r["dataset"] == dataset
        and r["model"] == model
        and all(r[k] == v for k, v in extra.items())
    ]
    assert len(rows) == 1, rows
    return rows[0]


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize(
    "comparison,top,rand",
    [
        ("attention", "top", "rand"),
        ("gradient", "grad_top", "grad_rand"),
        ("grad_x_attention", "gxa_top", "gxa_rand"),
    ],
)
def test_table2_cells_match_a_loop_over_documents(models, comparison, top, rand):
    table = analysis.decision_flip_table(models, comparison)
    sym = {"attention": "i*", "gradient": "i*_g", "grad_x_attention": "i*_p"}[comparison]
    for m in models:
        res = to_flat(m.results)
        counts = {"both": 0, "top": 0, "rand": 0, "neither": 0}
        n_inc = 0
        for i in range(len(res["seq_len"])):
            if res["seq_len"][i] <= 1:
                continue
            n_inc += 1
            ft = res[f"single_{top}_flip"][i] != -1
            fr = res[f"single_{rand}_flip"][i] != -1
            key = "both" if ft and fr else "top" if ft else "rand" if fr else "neither"
            counts[key] += 1
        row = _row(table, m.dataset, analysis.arch_label(m.arch))
        assert row["docs n > 1"] == n_inc
        assert _close(row["both flip %"], 100 * counts["both"] / n_inc)
        assert _close(row[f"only {sym} flips %"], 100 * counts["top"] / n_inc)
        assert _close(row["only r flips %"], 100 * counts["rand"] / n_inc)
        assert _close(row["neither %"], 100 * counts["neither"] / n_inc)
        total = sum(row[k] for k in table.columns[3:7])
        assert abs(total - 100.0) < 1e-9


def test_table2_rejects_unknown_comparison(models):
    with pytest.raises(ValueError, match="comparison"):
        analysis.decision_flip_table(models, "norm")


def test_never_flip_and_pairwise_tables_match_loops(models):
    never = analysis.never_flip_table(models)
    pair = analysis.pairwise_table(models)
    nopt = analysis.not_optimal_table(models)
    for m in models:
        res = to_flat(m.results)
        inc = [i for i in range(len(res["seq_len"])) if res["seq_len"][i] > 1]
        label = analysis.arch_label(m.arch)
        row = _row(never, m.dataset, label)
        for name, col in (("attention", "Attention %"), ("gradient", "Gradient %")):
            expect = 100 * sum(res[f"rank_{name}_k"][i] == -1 for i in inc) / len(inc)
            assert _close(row[col], expect)
        expect_min = 100 * sum(res["k_min"][i] == -1 for i in inc) / len(inc)
        assert _close(row["Exact minimum %"], expect_min)

        grad_sooner_all = 0
        for other in ("gradient", "grad_x_attention"):
            a_first = b_first = tie = both_never = 0
            for i in inc:
                ka, kb = res["rank_attention_k"][i], res[f"rank_{other}_k"][i]
                if ka == -1 and kb == -1:
                    both_never += 1
                elif kb == -1 or (ka != -1 and ka < kb):
                    a_first += 1
                elif ka == -1 or kb < ka:
                    b_first += 1
                else:
                    tie += 1
            denom = len(inc) - both_never
            prow = _row(pair, m.dataset, label, **{"other ranking": analysis.ranking_label(other)})
            assert prow["denominator"] == denom
            assert _close(prow["attention sooner %"], 100 * a_first / denom)
            assert _close(prow["other sooner %"], 100 * b_first / denom)
            assert _close(prow["tie %"], 100 * tie / denom)
            if other == "gradient":
                grad_sooner_all = b_first
        nrow = _row(nopt, m.dataset, label)
        assert _close(nrow["gradient sooner %"], 100 * grad_sooner_all / len(inc))
        exact = sum(
            (res["k_min"][i] > 0)
            and (res["rank_attention_k"][i] == -1 or res["rank_attention_k"][i] > res["k_min"][i])
            for i in inc
        )
        assert _close(nrow["k_attention > k_min %"], 100 * exact / len(inc))


def test_gap_and_aopc_tables_match_arrays(models):
    gap = analysis.optimality_gap_table(models, rankings=("attention",))
    aopc = analysis.aopc_table(models)
    for m in models:
        res = to_flat(m.results)
        inc = res["seq_len"] > 1
        label = analysis.arch_label(m.arch)
        k, k_min = res["rank_attention_k"][inc], res["k_min"][inc]
        both = (k > 0) & (k_min > 0)
        row = _row(gap, m.dataset, label)
        assert _close(row["optimal %"], 100 * float(np.mean(both & (k == k_min))))
        assert _close(row["mean gap (items)"], float(np.mean((k - k_min)[both])))
        arow = _row(aopc, m.dataset, label, ranking="Gradient")
        assert np.isclose(
            arow["comprehensiveness (all k)"], np.mean(res["rank_gradient_aopc_comp"][inc])
        )
        assert np.isclose(arow["sufficiency (all k)"], np.mean(res["rank_gradient_aopc_suff"][inc]))


def test_accuracy_table_and_order(models):
    table = analysis.accuracy_table(models)
    got = [(r["dataset"], r["model"]) for r in table.as_dicts()]
    assert got == [("ds_a", "HANrnn"), ("ds_a", "FLANconv"), ("ds_b", "HANrnn")]
    assert _close(table.as_dicts()[0]["test accuracy %"], 62.5)
    assert table.as_dicts()[1]["test accuracy %"] is None
    assert "–" in table.to_markdown()  # missing accuracy shown as a dash
    assert table.as_dicts()[0]["docs n > 1"] == int(np.sum(models[0].results.docs.seq_len > 1))


def test_accuracy_table_shows_the_baseline_beside_every_model(models):
    table = analysis.accuracy_table(models, {"ds_a": 0.619})
    rows = table.as_dicts()
    assert [r["TF-IDF + LR test accuracy %"] for r in rows] == [61.9, 61.9, None]
    assert "| 61.9 |" in table.to_markdown() and "scikit-learn" in table.note
    assert "TF-IDF + LR test accuracy %" not in analysis.accuracy_table(models).columns


def test_rendering_escapes_and_formats():
    t = analysis.Table(
        "a <b> & c",
        ("name", "share %", "x"),
        (("x|<i>", 12.345, 0.5), ("y", None, float("nan"))),
        note="n<1",
        percent_columns=("share %",),
    )
    html = t.to_html()
    assert "<i>" not in html and "&lt;i&gt;" in html and "a &lt;b&gt; &amp; c" in html
    md = t.to_markdown()
    assert "x\\|<i>" in md and "12.3" in md and "0.500" in md
    assert md.count("–") == 2


def test_dataset_table_from_stats_dict():
    stats = {
        "dataset": "toy",
        "num_classes": 3,
        "splits": {"train": 10, "test": 4},
        "tokens_per_doc": {"train": {"mean": 12.0, "sd": 2.5}, "test": {"mean": 9.0, "sd": 1.0}},
        "sentences_per_doc": {"train": {"mean": 2.0, "sd": 0.5}, "test": {"mean": 1.5, "sd": 0.5}},
        "multi_sentence_share": {"train": 0.7, "test": 0.25},
    }
    rows = analysis.dataset_table([stats]).as_dicts()
    assert [r["split"] for r in rows] == ["train", "test"]
    assert rows[0]["tokens / doc"] == "12.0 ± 2.5"
    assert _close(rows[1]["% docs > 1 sentence"], 25.0)


def test_claims_quote_the_recomputed_numbers(models):
    sentences = analysis.claims(models)
    m = models[0]
    res = to_flat(m.results)
    inc = res["seq_len"] > 1
    f_top = 100 * float(np.mean(res["single_top_flip"][inc] != -1))
    f_rand = 100 * float(np.mean(res["single_rand_flip"][inc] != -1))
    first = [s for s in sentences if s.startswith("HANrnn on ds_a") and "removing the highest" in s]
    assert len(first) == 1
    assert f"{f_top:.1f}% of documents" in first[0] and f"r in {f_rand:.1f}%" in first[0]


def test_model_results_checks_input():
    with pytest.raises(ValueError, match="seq_len"):
        analysis.ModelResults("d", "han_rnn", {"doc_id": np.zeros(2)})
    m = analysis.ModelResults("d", "han_rnn", synthetic_results(3))
    with pytest.raises(KeyError, match="rank_norm_k"):
        m.curve("norm")
