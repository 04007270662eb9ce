"""colab/quickstart.ipynb: valid nbformat 4, and its code cells run on CPU in smoke mode."""

import json
import os
import subprocess
import sys

from test_reproduce import write_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "colab", "quickstart.ipynb")


def _load():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_notebook_is_valid_nbformat4():
    nb = _load()
    assert nb["nbformat"] == 4 and isinstance(nb["metadata"], dict)
    kinds = {c["cell_type"] for c in nb["cells"]}
    assert kinds <= {"code", "markdown", "raw"} and "code" in kinds
    for c in nb["cells"]:
        assert isinstance(c["metadata"], dict)
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and "execution_count" in c
    colab_only = [c for c in nb["cells"] if _source(c).startswith("# colab-only")]
    assert len(colab_only) == 1 and "pip install" in _source(colab_only[0])


def test_notebook_code_cells_run_in_smoke_mode(tmp_path):
    cells = [c for c in _load()["cells"] if c["cell_type"] == "code"]
    code = [_source(c) for c in cells if not _source(c).startswith("# colab-only")]
    for src in code:  # IPython magics only in Colab-only cells
        assert not any(line.lstrip().startswith(("%", "!")) for line in src.splitlines())
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(code), encoding="utf-8")
    data = tmp_path / "tiny.csv"
    write_tiny_dataset(str(data), seed=1)
    workdir = tmp_path / "work"
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        MPLBACKEND="Agg",
        ATTN_INTERP_CACHE=str(tmp_path / "cache"),
        ATTN_INTERP_NOTEBOOK_SMOKE="1",
        ATTN_INTERP_NOTEBOOK_DATA=str(data),
        ATTN_INTERP_NOTEBOOK_WORKDIR=str(workdir),
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "smoke mode: True" in proc.stdout and "test accuracy" in proc.stdout
    assert "Table 2" in proc.stdout
    assert (workdir / "han_noenc" / "erasure" / "summary.json").is_file()
    assert (workdir / "documents.html").is_file()
    assert (workdir / "report" / "report.html").is_file()
    pngs = sorted(p for p in os.listdir(workdir / "figures") if p.endswith(".png"))
    assert pngs == [
        "fig3_js_vs_alpha_attention_han_noenc.png",
        "fig4_negative_js_hist_han_noenc.png",
        "fig5_removal_frac_han_noenc.png",
        "optimality_gap_han_noenc.png",
    ]
