"""colab/quickstart.ipynb: valid nbformat 4, and its code cells run on CPU in smoke mode."""

import json
import os
import subprocess
import sys

import pytest
from helpers import write_tiny_dataset

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
    for c in nb["cells"]:  # plain Python: runs in Colab and in this repository's test alike
        if c["cell_type"] == "code":
            assert not any(x.lstrip().startswith(("%", "!")) for x in _source(c).splitlines())


def _install_cell() -> tuple[str, dict]:
    """The install cell's source and the names it defines (executed outside Colab: no-op)."""
    cells = [c for c in _load()["cells"] if c["cell_type"] == "code"]
    src = _source(cells[0])
    namespace: dict = {}
    exec(compile(src, "install-cell", "exec"), namespace)
    return src, namespace


def test_install_cell_has_one_marked_setting_and_picks_the_runtimes_jax_build(tmp_path):
    src, ns = _install_cell()
    marked = [x for x in src.splitlines() if "<-- SET THIS" in x]
    assert len(marked) == 1 and marked[0].startswith('REPO_URL = ""')
    assert ns["ON_COLAB"] is False  # outside Colab the cell installs nothing
    # Package source: the repository URL when set, else exactly one uploaded wheel.
    url = "https://github.com/someone/attn_interp"
    extras = "attn_interp[word2vec,baseline] @ "
    assert ns["package_requirement"](url, []) == extras + "git+" + url
    assert (
        ns["package_requirement"]("git+" + url + "@v1", ["x.whl"]) == extras + "git+" + url + "@v1"
    )
    wheel = "/content/attn_interp-0.1.0-py3-none-any.whl"
    assert ns["package_requirement"]("", [wheel]) == wheel + "[word2vec,baseline]"
    for wheels, words in (([], "Set REPO_URL"), (["a.whl", "b.whl"], "several wheels")):
        with pytest.raises(ValueError, match=words):
            ns["package_requirement"]("  ", wheels)
    # The JAX build of the runtime found at run time, at the installed JAX version.
    detect = ns["detect_accelerator"]
    assert detect({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, lambda p: False) == "tpu"
    assert detect({}, lambda p: p == "/dev/accel0") == "tpu"
    assert detect({}, lambda p: p == "/dev/nvidia0") == "gpu"
    assert detect({}, lambda p: False) == "cpu"
    jax_req = ns["jax_requirement"]
    assert jax_req("gpu", "0.10.2") == "jax[cuda12]==0.10.2"
    assert jax_req("tpu", "0.10.2") == "jax[tpu]==0.10.2"
    assert jax_req("cpu", "0.10.2") is None


def test_workdir_can_live_on_google_drive():
    cells = [c for c in _load()["cells"] if c["cell_type"] == "code"]
    settings = [_source(c) for c in cells if "USE_DRIVE = " in _source(c)]
    assert len(settings) == 1
    assert "drive.mount(" in settings[0] and "MyDrive" in settings[0]


def test_notebook_code_cells_run_in_smoke_mode(tmp_path):
    cells = [c for c in _load()["cells"] if c["cell_type"] == "code"]
    code = [_source(c) for c in cells]
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
        PYTHONPATH=REPO,  # this checkout's package, not another installed copy
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
