"""Report sections of the follow-up tests: tables, figures and sentences carry the summary's
numbers."""

import numpy as np
from test_explorer_browser import flat_results

from attn_interp.analysis.followups_report import FollowupEntry, followup_sections
from attn_interp.analysis.model_results import ModelResults
from attn_interp.analysis.tables import Table
from attn_interp.followups import FollowupConfig
from attn_interp.followups.summary import summarize_followups

CFG = FollowupConfig(epsilons=(0.01, 0.02))


def _columns(rng, docs=60):
    n = rng.integers(1, 12, docs)
    cols = {
        "doc_index": np.arange(docs),
        "seq_len": n,
        "predicted": rng.integers(0, 3, docs),
        "label": rng.integers(0, 3, docs),
        "items/alpha": rng.random(int(n.sum())).astype(np.float32),
    }
    for r in ("gradient", "leave_one_out"):
        cols[f"tau_{r}"] = np.where(n > 1, rng.uniform(-0.2, 0.8, docs), np.nan)
        cols[f"p_{r}"] = np.where(n > 1, rng.random(docs), np.nan)
        for k in ("top1", "top3", "top5", "top10pct"):
            cols[f"overlap_{r}_{k}"] = rng.random(docs)
    for b in ("uniform", "permuted", "other_seed"):
        cols[f"baseline_{b}_predicted"] = rng.integers(0, 3, docs)
        cols[f"baseline_{b}_changed"] = rng.random(docs) < 0.2
        for f in ("tvd", "js", "weight_js"):
            cols[f"baseline_{b}_{f}"] = rng.random(docs) * 0.1
    for e in ("eps0.01", "eps0.02"):
        cols[f"adv_js_{e}"] = np.where(n > 1, rng.uniform(0, 0.69, docs), 0.0)
        cols[f"adv_found_{e}"] = n > 1
    return cols


def test_sections_state_the_summary_numbers(tmp_path):
    rng = np.random.default_rng(0)
    entries = []
    for arch in ("han_rnn", "flan_conv"):
        cols = _columns(rng)
        res = flat_results(cols["seq_len"], rng)
        model = ModelResults("d", arch, res, summary={})
        entries.append(FollowupEntry(model, cols, summarize_followups(cols, CFG, cols["label"])))
    sections = followup_sections(entries, str(tmp_path), [("x", "explorer/x.html")])
    assert [h.split(" (")[0] for h, _ in sections] == [
        "Rank agreement with other importance measures",
        "Replacing the attention weights",
        "Adversarial attention",
        "Document explorer",
    ]
    sentences = [
        s
        for _, items in sections
        for it in items
        if isinstance(it, tuple) and it[0] == "list"
        for s in it[1]
    ]
    for e in entries:
        s = e.summary
        inc = e.columns["seq_len"] > 1
        tau = e.columns["tau_gradient"][inc]
        assert abs(s.agreement["gradient"].mean_tau - np.nanmean(tau)) < 1e-9
        assert any(f"has mean {np.nanmean(tau):.2f}" in x and e.model.label in x for x in sentences)
        js = e.columns["adv_js_eps0.01"][inc]
        share = 100 * np.mean(js >= 0.5)
        assert any(f"exists for {share:.1f}% of {inc.sum()} documents" in x for x in sentences)
        assert s.baselines["uniform"].accuracy == np.mean(
            e.columns["baseline_uniform_predicted"] == e.columns["label"]
        )
    tables = [it for _, items in sections for it in items if isinstance(it, Table)]
    assert len(tables) == 3 and all(t.rows for t in tables)
    figs = [
        it[1] for _, items in sections for it in items if isinstance(it, tuple) and it[0] == "fig"
    ]
    assert len(figs) == 2 and all(p.endswith(".png") for p in figs)
