"""The shared shard store (`attn_interp.shards`): a shard is reused only if its file hashes to the
sum recorded in the manifest; other settings are refused or recomputed, never mixed in."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from attn_interp.run_dirs import FollowupDir
from attn_interp.shards import (
    SHARD_DOCS_KEY,
    SHARD_SUMS_KEY,
    ManifestMismatchError,
    load_npz,
    open_shards,
)

SETTINGS = {"config": {"eps": 0.1}, "revision": 3, "workdir": "/a"}


def _compute(calls, scale=1.0):
    def compute(lo, hi):
        calls.append((lo, hi))
        return {"doc": np.arange(lo, hi), "x": scale * np.sqrt(np.arange(lo, hi, dtype=float))}

    return compute


def _open(path, lines, settings=SETTINGS, shard_docs=2, refuse=False, **kw):
    return open_shards(
        FollowupDir(str(path)), settings, shard_docs, stage="test", refuse=refuse,
        log=lines.append, **kw,
    )  # fmt: skip


def _fill(store, calls, n_docs=5, scale=1.0):
    return store.fill(n_docs, _compute(calls, scale), desc="test", progress=False)


def _manifest(path):
    with open(os.path.join(path, "manifest.json")) as f:
        return json.load(f)


def test_damaged_swapped_and_unrecorded_shards_are_recomputed_with_the_reason(tmp_path):
    lines, calls = [], []
    paths = _fill(_open(tmp_path / "a", lines), calls)
    assert calls == [(0, 2), (2, 4), (4, 5)] and not lines
    manifest = _manifest(tmp_path / "a")
    assert manifest[SHARD_DOCS_KEY] == 2 and manifest["revision"] == 3
    assert sorted(manifest[SHARD_SUMS_KEY]) == [os.path.basename(p) for p in paths]
    want = [load_npz(p) for p in paths]
    # a re-run reuses every verified shard
    calls.clear()
    assert _fill(_open(tmp_path / "a", lines), calls) == paths and calls == [] and not lines
    # one flipped byte; a shard of the same size from a folder of other settings; a sum deleted
    with open(paths[0], "r+b") as f:
        f.seek(os.path.getsize(paths[0]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    other = {**SETTINGS, "revision": 4}
    b_paths = _fill(_open(tmp_path / "b", [], settings=other), [], scale=2.0)
    shutil.copyfile(b_paths[1], paths[1])
    del manifest[SHARD_SUMS_KEY][os.path.basename(paths[2])]
    with open(os.path.join(tmp_path / "a", "manifest.json"), "w") as f:
        json.dump(manifest, f)
    calls.clear()
    _fill(_open(tmp_path / "a", lines), calls)
    assert calls == [(0, 2), (2, 4), (4, 5)]
    assert lines == [
        f"{paths[0]} does not match its sha256 in manifest.json: recomputing it",
        f"{paths[1]} does not match its sha256 in manifest.json: recomputing it",
        f"{paths[2]} has no sha256 in manifest.json: recomputing it",
    ]
    for path, arrays in zip(paths, want, strict=True):
        got = load_npz(path)
        assert got.keys() == arrays.keys()
        for k in arrays:
            np.testing.assert_array_equal(got[k], arrays[k])


def test_a_sum_without_its_file_is_recomputed(tmp_path):
    """A kill between recording a sum and moving the file into place leaves a sum alone."""
    lines, calls = [], []
    paths = _fill(_open(tmp_path, lines), calls, n_docs=4)
    os.remove(paths[1])
    calls.clear()
    _fill(_open(tmp_path, lines), calls, n_docs=4)
    assert calls == [(2, 4)] and not lines


def test_other_settings_are_refused_or_recomputed_never_mixed_in(tmp_path):
    lines, calls = [], []
    _fill(_open(tmp_path, lines), calls)
    # a field named in `ignore` (a moved run folder) keeps the shards
    moved = {**SETTINGS, "workdir": "/b"}
    with pytest.raises(ManifestMismatchError, match=r"workdir: '/a' -> '/b'.*--overwrite"):
        _open(tmp_path, lines, settings=moved, refuse=True)
    calls.clear()
    _fill(_open(tmp_path, lines, settings=moved, refuse=True, ignore=("workdir",)), calls)
    assert calls == [] and not lines
    # refused (nothing deleted), then recomputed (the log says why)
    other = {**SETTINGS, "config": {"eps": 0.2}}
    with pytest.raises(ManifestMismatchError, match=r"config\.eps: 0\.1 -> 0\.2"):
        _open(tmp_path, lines, settings=other, refuse=True)
    assert len(os.listdir(tmp_path / "shards")) == 3
    _fill(_open(tmp_path, lines, settings=other), calls)
    assert calls == [(0, 2), (2, 4), (4, 5)]
    assert lines == [
        f"{tmp_path} holds test results of another setup (config.eps: 0.1 -> 0.2); recomputing"
    ]
    assert _manifest(tmp_path)["config"] == {"eps": 0.2}


def test_another_shard_size_recomputes_the_shards(tmp_path):
    """Shards of 2 documents reused as shards of 3 would drop or repeat documents."""
    lines, calls = [], []
    _fill(_open(tmp_path, lines), calls)
    with pytest.raises(ManifestMismatchError, match="shard_docs: 2 -> 3"):
        _open(tmp_path, lines, shard_docs=3, refuse=True)
    calls.clear()
    paths = _fill(_open(tmp_path, lines, shard_docs=3), calls)
    assert calls == [(0, 3), (3, 5)]
    assert lines == [
        f"{tmp_path / 'shards'} holds shards of another size (shard_docs: 2 -> 3): removing them"
    ]
    assert sorted(os.listdir(tmp_path / "shards")) == [os.path.basename(p) for p in paths]
    assert [load_npz(p)["doc"].tolist() for p in paths] == [[0, 1, 2], [3, 4]]


def test_bad_arguments_and_unreadable_manifest(tmp_path):
    with pytest.raises(ValueError, match="shard_docs must be >= 1"):
        _open(tmp_path, [], shard_docs=0)
    os.makedirs(tmp_path / "x")
    (tmp_path / "x" / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestMismatchError, match="manifest.json is unreadable"):
        _open(tmp_path / "x", [])
    (tmp_path / "y.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match=r"y\.npz is not a readable \.npz"):
        load_npz(str(tmp_path / "y.npz"))
