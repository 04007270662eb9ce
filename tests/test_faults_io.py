"""Atomic writes under disk-full / read-only failures, clear one-line launcher errors, and no
pickle anywhere in the package."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from attn_interp import io_utils
from attn_interp.erasure import ErasureConfig, run_suite, write_outputs

pytestmark = pytest.mark.faults

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raiser(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def test_round_trips_and_object_arrays_are_refused(tmp_path):
    path = tmp_path / "sub" / "a.json"
    io_utils.atomic_write_json(path, {"x": np.float32(1.5), "t": (1, 2), "a": np.arange(3)})
    assert json.loads(path.read_text()) == {"x": 1.5, "t": [1, 2], "a": [0, 1, 2]}
    npz = tmp_path / "a.npz"
    arrays = {"i": np.arange(4, dtype=np.int64), "f": np.random.default_rng(0).normal(size=(2, 3))}
    io_utils.atomic_write_npz(npz, arrays)
    with np.load(npz, allow_pickle=False) as f:
        for key, value in arrays.items():
            np.testing.assert_array_equal(f[key], value)
    with pytest.raises(TypeError, match="pickle"):
        io_utils.atomic_write_npz(npz, {"o": np.array([{}, None], dtype=object)})
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "sub"]  # no temporary files left


@pytest.mark.parametrize(
    ("target", "code", "hint"),
    [
        ("replace", errno.ENOSPC, "disk is full"),
        ("replace", errno.EROFS, "read-only"),
        ("mkstemp", errno.EROFS, "read-only"),
        ("fsync", errno.EDQUOT, "quota"),
    ],
)
def test_disk_full_or_read_only_keeps_the_old_file_and_says_what_to_do(
    tmp_path, monkeypatch, target, code, hint
):
    path = tmp_path / "summary.json"
    io_utils.atomic_write_json(path, {"old": True})
    if target == "mkstemp":
        monkeypatch.setattr(io_utils.tempfile, "mkstemp", _raiser(code))
    else:
        monkeypatch.setattr(io_utils.os, target, _raiser(code))
    with pytest.raises(io_utils.OutputWriteError, match=hint) as err:
        io_utils.atomic_write_json(path, {"new": True})
    assert err.value.errno == code
    assert str(path) in str(err.value) and "output folder" in str(err.value)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}  # untouched
    assert os.listdir(tmp_path) == ["summary.json"]  # temporary file removed


def test_library_writers_report_the_path_on_a_full_disk(tmp_path, monkeypatch):
    results = run_suite(
        np.ones((2, 2, 1), np.float32),
        np.zeros((2, 2), np.float32),
        np.array([[True, False], [True, True]]),
        affine=(np.ones((1, 2), np.float32), np.zeros(2, np.float32)),
        config=ErasureConfig(),
    )
    monkeypatch.setattr(io_utils.os, "replace", _raiser(errno.ENOSPC))
    with pytest.raises(io_utils.OutputWriteError, match=re.escape(str(tmp_path / "results.npz"))):
        write_outputs(results, tmp_path, summary={})
    assert os.listdir(tmp_path) == []


def test_other_os_errors_pass_through_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(io_utils.os, "replace", _raiser(errno.EIO))
    with pytest.raises(OSError) as err:
        io_utils.atomic_write_text(tmp_path / "x.txt", "x")
    assert not isinstance(err.value, io_utils.OutputWriteError) and err.value.errno == errno.EIO


def test_launchers_print_one_line_instead_of_a_traceback(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = _REPO + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "experiments.erasure", f"--workdir={tmp_path}", "--noprogress"]
    proc = subprocess.run(cmd, cwd=_REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "RunFolderError" in x]
    assert len(lines) == 1 and "not a training run folder" in lines[0] and "--workdir" in lines[0]


def _package_sources():
    for top in ("attn_interp", "experiments"):
        for root, _, files in os.walk(os.path.join(_REPO, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        yield os.path.relpath(path, _REPO), f.read()


def _calls(code: str, prefix: str) -> list[str]:
    """The text of every `prefix...)` call in `code`, up to its matching parenthesis."""
    calls = []
    for match in re.finditer(re.escape(prefix), code):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(code)):
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            if depth == 0:
                break
        calls.append(code[match.start() : end + 1])
    return calls


def test_no_pickle_is_ever_loaded():
    sources = dict(_package_sources())
    assert "attn_interp/io_utils.py" in sources and len(sources) > 20
    offenders = []
    for path, text in sources.items():
        code = "\n".join(x.split("#")[0] for x in text.splitlines())  # drop comments
        if re.search(r"\bimport (c?pickle|dill|joblib)\b|\bfrom (c?pickle|dill|joblib)\b", code):
            offenders.append(f"{path}: imports pickle")
        if re.search(r"allow_pickle\s*=\s*True", code):
            offenders.append(f"{path}: allow_pickle=True")
        for call in _calls(code, "np.load("):
            if "allow_pickle=False" not in call:
                offenders.append(f"{path}: {call} without allow_pickle=False")
    assert not offenders, offenders


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        path = io_utils.atomic_write_text(tmp_path / "new.txt", "x")
        npz = io_utils.atomic_write_npz(tmp_path / "new.npz", {"a": np.arange(3)})
        io_utils.atomic_write_json(tmp_path / "sub" / "new.json", {"a": 1})
    finally:
        os.umask(old)
    for p in (path, npz, tmp_path / "sub" / "new.json"):
        assert os.stat(p).st_mode & 0o777 == expected, oct(os.stat(p).st_mode)


def test_replacing_a_file_keeps_its_mode_and_stale_temp_files_go(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    io_utils.atomic_write_json(target, {"a": 2})
    assert os.stat(target).st_mode & 0o777 == 0o640 and json.loads(target.read_text()) == {"a": 2}
    stale = tmp_path / ".summary.json.k3j2.tmp"
    stale.write_text("partial")
    keep = tmp_path / "notes.tmp"  # not a hidden writer's temp file: kept
    keep.write_text("mine")
    assert io_utils.remove_stale_temp_files(tmp_path) == [str(stale)]
    assert not stale.exists() and keep.exists()


def test_every_launcher_gives_one_line_for_a_file_workdir_bad_data_and_leaves_no_empty_folder(
    tmp_path,
):
    env = dict(os.environ, JAX_PLATFORMS="cpu", ATTN_INTERP_CACHE=str(tmp_path / "cache"))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    missing = tmp_path / "no_such.csv"
    data = ["--dataset=local", f"--local_path={missing}"]
    cases = {  # name -> (module, args, folder that must not be left behind)
        "train_file": ("train", [f"--workdir={a_file}", *data], None),
        "erasure_file": ("erasure", [f"--workdir={tmp_path}", f"--out_dir={a_file}"], None),
        "reproduce_file": ("reproduce", [f"--workdir={a_file}", *data], None),
        "train_data": ("train", [f"--workdir={tmp_path / 'new_run'}", *data], "new_run"),
        "reproduce_data": ("reproduce", [f"--workdir={tmp_path / 'new_job'}", *data], "new_job"),
        "stats_data": ("dataset_stats", data, None),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"experiments.{module}", *args],
            cwd=_REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (module, args, _) in cases.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, (name, err[-2000:])
        assert "Traceback" not in err, (name, err[-2000:])
        errors = [x for x in err.splitlines() if x.startswith("E")]
        assert len(errors) == 1, (name, errors)
        if name.endswith("_file"):
            assert f"={a_file} is a file, not a folder" in errors[0], (name, errors)
        else:
            assert str(missing) in errors[0], (name, errors)
        left = cases[name][2]
        if left is not None:
            assert not (tmp_path / left).exists(), name
