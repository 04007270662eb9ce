"""Figures and the per-document view of attn_interp.analysis on synthetic erasure results."""

import html
import os

import numpy as np
import pytest

from attn_interp import analysis
from attn_interp.analysis.model_results import BOX_RANKINGS
from attn_interp.erasure import ErasureConfig, run_suite, to_flat

B, N, D, C = 48, 6, 8, 3


def synthetic_results(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(B, N, D)).astype(np.float32)
    scores = (2.0 * rng.normal(size=(B, N))).astype(np.float32)
    lengths = rng.integers(1, N + 1, size=B)
    mask = np.arange(N)[None, :] < lengths[:, None]
    kernel = rng.normal(size=(D, C)).astype(np.float32)
    bias = (0.5 * rng.normal(size=C)).astype(np.float32)
    cfg = ErasureConfig(num_random=1, rankings=("attention", "gradient", "grad_x_attention"))
    return run_suite(values, scores, mask, affine=(kernel, bias), config=cfg)


@pytest.fixture(scope="module")
def models():
    res = synthetic_results(0)
    documents = [
        {"doc_index": int(d), "label": 0, "items": [f"<s{j}> & 'x'" for j in range(int(n))]}
        for d, n in zip(res.docs.doc_id, res.docs.seq_len, strict=True)
    ]
    return [
        analysis.ModelResults("ds_a", "han_rnn", res, documents=documents, class_names=["a<b"]),
        analysis.ModelResults("ds_b", "han_rnn", synthetic_results(1)),
        analysis.ModelResults("ds_a", "flan_conv", synthetic_results(2)),
    ]


def _check_pairs(paths, expected_stems):
    assert sorted(os.path.basename(p) for p in paths) == sorted(s + ".png" for s in expected_stems)
    for p in paths:
        for ext in (".png", ".pdf"):
            q = p[:-4] + ext
            assert os.path.getsize(q) > 1000, q
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_figure_writes_png_and_pdf_per_architecture(models, tmp_path):
    out = str(tmp_path)
    _check_pairs(
        analysis.figure_js_vs_alpha(models, out),
        ["fig3_js_vs_alpha_attention_han_rnn", "fig3_js_vs_alpha_attention_flan_conv"],
    )
    _check_pairs(
        analysis.figure_negative_js_hist(models, out),
        ["fig4_negative_js_hist_han_rnn", "fig4_negative_js_hist_flan_conv"],
    )
    _check_pairs(
        analysis.figure_removal_boxplots(models, out, quantity="frac"),
        ["fig5_removal_frac_han_rnn", "fig5_removal_frac_flan_conv"],
    )
    _check_pairs(
        analysis.figure_removal_boxplots(models[:1], out, quantity="probmass"),
        ["fig6_removal_probmass_han_rnn"],
    )
    _check_pairs(analysis.figure_optimality_gap(models[2:], out), ["optimality_gap_flan_conv"])
    with pytest.raises(ValueError, match="quantity"):
        analysis.figure_removal_boxplots(models, out, quantity="mass")
    with pytest.raises(ValueError, match="no models"):
        analysis.figure_js_vs_alpha([], out)


def test_subsample_keeps_the_maximum_and_caps_each_bin():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.05, size=2000)  # 10 bins of width 0.005, ~200 points each
    y = rng.normal(size=2000)
    idx = analysis.subsample_per_bin(x, y, 3, seed=1)
    assert int(np.argmax(y)) in idx
    assert len(np.unique(idx)) == len(idx)
    bins = np.floor(x[idx] / 0.005).astype(int)
    counts = np.bincount(bins)
    top_bin = int(np.floor(x[np.argmax(y)] / 0.005))
    for b, c in enumerate(counts):
        assert c <= (4 if b == top_bin else 3)
        assert c >= min(3, int(np.sum(np.floor(x / 0.005) == b)))
    # Fewer points than the cap: everything is kept.
    assert np.array_equal(analysis.subsample_per_bin(x[:5] * 0 + 0.3, y[:5], 10), np.arange(5))


def _gap_score(res, i):
    if res["seq_len"][i] < 2:
        return None
    k, k_min = res["rank_attention_k"][i], res["k_min"][i]
    if k > 0 and k_min > 0:
        return (k - k_min) / res["seq_len"][i]
    if k == -1 and k_min > 0:
        return 1.0 + k_min / res["seq_len"][i]
    return None


def test_select_documents_by_optimality_gap(models):
    m = models[0]
    res = to_flat(m.results)
    most, least = analysis.select_documents(m, num_each=2)
    scores = {i: _gap_score(res, i) for i in range(len(res["seq_len"]))}
    defined = [s for s in scores.values() if s is not None]
    assert len(most) == 2 and len(least) == 2 and not set(most) & set(least)
    assert all(abs(scores[i] - min(defined)) < 1e-6 for i in most)
    assert abs(scores[least[0]] - max(defined)) < 1e-6
    assert max(defined) > min(defined)


def test_document_view_escapes_text_and_marks_flips(models, tmp_path):
    m = models[0]
    path = analysis.write_document_view(m, str(tmp_path / "docs.html"), num_each=1)
    page = open(path, encoding="utf-8").read()
    assert "<s0>" not in page and html.escape("<s0> & 'x'") in page
    assert "a&lt;b (0)" in page  # class name escaped
    assert "<style>" in page and "<link" not in page and "<script" not in page
    most, least = analysis.select_documents(m, num_each=1)
    res = to_flat(m.results)
    for row in most + least:
        k = int(res["rank_attention_k"][row])
        assert f"<td>{res['doc_id'][row]}</td>" in page
        if k > 0:
            assert f"<sup>{k}</sup>" in page
    assert 'class="it flip"' in page
    # Explicit rows; and a results dict without per-item arrays is rejected clearly.
    path2 = analysis.write_document_view(m, str(tmp_path / "one.html"), rows=[5])
    assert f"<td>{res['doc_id'][5]}</td>" in open(path2, encoding="utf-8").read()
    no_items = {k: v for k, v in res.items() if not k.startswith("items/")}
    with pytest.raises(ValueError, match="store_item_arrays"):
        analysis.write_document_view(
            analysis.ModelResults("d", "han_rnn", no_items), str(tmp_path / "x.html")
        )


@pytest.fixture
def drawn(monkeypatch):
    """Every Figure the figure functions save, by file stem (the files are still written)."""
    from attn_interp.analysis import figures

    figs = {}
    save = figures._save

    def keep(fig, out_dir, stem):
        figs[stem] = fig
        return save(fig, out_dir, stem)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_scatter_points_are_the_documents_deltas(models, tmp_path, drawn):
    analysis.figure_js_vs_alpha(models, str(tmp_path))
    for arch, ms in (("han_rnn", models[:2]), ("flan_conv", models[2:])):
        panels = _panels(drawn[f"fig3_js_vs_alpha_attention_{arch}"])
        assert len(panels) == len(ms)
        for ax, m in zip(panels, sorted(ms, key=lambda m: m.dataset), strict=True):
            (points,) = ax.collections
            want = np.stack([m.delta("attention", "weight"), m.delta("attention")], axis=1)
            np.testing.assert_allclose(points.get_offsets(), want.astype(np.float64))
            assert ax.get_title().startswith(m.dataset)
            neg = 100 * np.mean(m.delta("attention") < 0)
            assert f"ΔJS < 0: {neg:.1f}%" in ax.get_title()


def test_histogram_bars_count_the_negative_js_documents(models, tmp_path, drawn):
    analysis.figure_negative_js_hist(models, str(tmp_path), bins=10)
    ax = _panels(drawn["fig4_negative_js_hist_flan_conv"])[0]
    m = models[2]
    x = m.delta("attention", "weight")[m.delta("attention") < 0]
    counts, _ = np.histogram(x, bins=np.linspace(0.0, 1.0, 11))
    assert [p.get_height() for p in ax.patches] == counts.tolist()
    assert counts.sum() > 0


def test_boxplots_show_each_rankings_removed_fraction(models, tmp_path, drawn):
    analysis.figure_removal_boxplots(models[2:], str(tmp_path), quantity="frac")
    ax, ax2 = drawn["fig5_removal_frac_flan_conv"].axes
    m = models[2]
    names = [*BOX_RANKINGS, "minimum"]
    medians = [float(line.get_ydata()[0]) for line in ax.lines if line.get_gid()]
    want_medians, want_never = [], []
    for name in names:
        if name == "minimum":
            k, v = m.min_flip_column("k"), m.min_flip_column("frac")
        else:
            k, v = m.ranking_column(name, "k"), m.ranking_column(name, "frac")
        v = v[k > 0]
        if v.size:
            want_medians.append(float(np.median(v)))
        want_never.append(100 * float(np.mean(k == -1)))
    assert len(medians) == len(want_medians) >= 4
    np.testing.assert_allclose(medians, want_medians, rtol=1e-6)
    np.testing.assert_allclose([p.get_height() for p in ax2.patches], want_never, rtol=1e-6)


def test_figures_leave_pyplot_and_the_backend_alone(models, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend, open_before = matplotlib.get_backend(), plt.get_fignums()
    analysis.figure_optimality_gap(models, str(tmp_path))
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_before
