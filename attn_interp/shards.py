"""Sharded results of a stage (erasure, follow-ups), verified when a re-run reuses them.

A stage writes its results shard by shard into the shards/ folder of its `_ResultsDir`
(`shard_00000.npz` holds documents [0, shard_docs), ...). The folder's manifest.json holds the
stage's settings (what produced the results), `SHARD_DOCS_KEY` (the documents per shard) and
`SHARD_SUMS_KEY`: shard file name -> sha256 of the file as written. A shard's sum is
recorded before its file is renamed into place (both writes atomic), so a kill in between leaves a
sum without its file (recomputed), never a file without a sum. On resume a shard counts as complete
only if its bytes hash to the recorded sum: a truncated, damaged, swapped (another setup's) or
unrecorded file is recomputed, and the log names it and says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from attn_interp.io_utils import (
    atomic_write_bytes,
    atomic_write_json,
    npz_bytes,
    remove_stale_temp_files,
)
from attn_interp.records import record_differences
from attn_interp.run_dirs import MANIFEST_FILE, _ResultsDir

SHARD_SUMS_KEY = "shard_sha256"  # manifest entry: shard file name -> sha256 of the written file
SHARD_DOCS_KEY = "shard_docs"  # manifest entry: documents per shard

__all__ = [
    "SHARD_DOCS_KEY",
    "SHARD_SUMS_KEY",
    "ManifestMismatchError",
    "ShardStore",
    "load_npz",
    "npz_member",
    "open_npz",
    "open_shards",
]


class ManifestMismatchError(ValueError):
    """An output folder holds (partial) results of another config, checkpoint or data set."""


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


@dataclasses.dataclass
class ShardStore:
    """The shard files of one results folder and their recorded sums (module docstring).

    settings: the manifest without the shard layout and sums; shard_docs: documents per shard;
    sums: shard file name -> recorded sha256; log: receives one line per shard found incomplete
    and why.
    """

    folder: _ResultsDir
    settings: dict[str, Any]
    shard_docs: int
    sums: dict[str, str]
    log: Callable[[str], None]

    def path(self, s: int) -> str:
        return self.folder.shard_path(s)

    def verified(self, s: int) -> bool:
        """Whether shard `s`'s file exists and hashes to its recorded sum (logs why not, for a
        file that is there)."""
        path = self.path(s)
        if not os.path.exists(path):
            return False
        recorded = self.sums.get(os.path.basename(path))
        if recorded is not None and _sha256_file(path) == recorded:
            return True
        why = "does not match its sha256" if recorded else "has no sha256"
        self.log(f"{path} {why} in {MANIFEST_FILE}: recomputing it")
        return False

    def complete(self, n_shards: int) -> list[int]:
        """The shards among 0..n_shards-1 that a re-run may reuse (verified), ascending."""
        return [s for s in range(n_shards) if self.verified(s)]

    def fill(
        self,
        n_docs: int,
        compute: Callable[[int, int], Mapping[str, Any]],
        *,
        desc: str,
        progress: bool,
    ) -> list[str]:
        """Makes every shard complete: shard s holds `compute(lo, hi)` for documents [lo, hi) =
        [s * shard_docs, (s + 1) * shard_docs) of `n_docs`; the complete ones are kept, the others
        computed in order. Returns every shard's path, in order."""
        size = self.shard_docs
        n_shards = -(-n_docs // size)
        done = set(self.complete(n_shards))
        with tqdm(total=n_docs, unit="doc", desc=desc, disable=not progress) as bar:
            for s in range(n_shards):
                lo, hi = s * size, min((s + 1) * size, n_docs)
                if s not in done:
                    self.write(s, compute(lo, hi))
                bar.update(hi - lo)
        return [self.path(s) for s in range(n_shards)]

    def write(self, s: int, arrays: Mapping[str, Any]) -> str:
        """Writes shard `s` (an .npz of `arrays`), its sum recorded first; returns its path."""
        path = self.path(s)
        data = npz_bytes(arrays)
        self.sums[os.path.basename(path)] = hashlib.sha256(data).hexdigest()
        self.write_manifest()
        return atomic_write_bytes(path, data)

    def write_manifest(self) -> None:
        record = {
            **self.settings,
            SHARD_DOCS_KEY: self.shard_docs,
            SHARD_SUMS_KEY: dict(sorted(self.sums.items())),
        }
        atomic_write_json(self.folder.manifest_path, record)


def open_shards(
    folder: _ResultsDir,
    settings: Mapping[str, Any],
    shard_docs: int,
    *,
    stage: str,
    refuse: bool,
    log: Callable[[str], None],
    ignore: Collection[str] = (),
) -> ShardStore:
    """Opens (or creates) `folder` for results of `settings` in shards of `shard_docs` documents
    and returns its shard store.

    A manifest of other settings or another shard size (fields in `ignore` aside) is refused with
    ManifestMismatchError naming the differences when `refuse`. Otherwise other settings delete
    the folder, and another shard size deletes the shards (they cover other documents), `log`
    saying why. Partial writes of a killed earlier run are removed. `stage` names the results in
    messages ("erasure").
    """
    if shard_docs < 1:
        raise ValueError(f"shard_docs must be >= 1, got {shard_docs}.")
    try:
        old = folder.manifest()
    except ValueError as err:  # unreadable: never guess which shards are whose
        raise ManifestMismatchError(str(err)) from err
    sums = None
    if old is not None:
        want = {**settings, SHARD_DOCS_KEY: shard_docs}
        diffs = record_differences(old, want, {*ignore, SHARD_SUMS_KEY})
        if diffs and refuse:
            raise ManifestMismatchError(
                f"{_other_setup(folder, stage, diffs)}. Repeat the original settings to resume, "
                "choose another output folder, or pass overwrite=True (--overwrite) to delete "
                "them and start over."
            )
        sums = _reusable_sums(folder, old, diffs, stage, log)
    os.makedirs(folder.shard_dir, exist_ok=True)
    for path in (folder.path, folder.shard_dir):
        remove_stale_temp_files(path)
    store = ShardStore(folder, dict(settings), shard_docs, sums or {}, log)
    if sums is None:
        store.write_manifest()
    return store


def _other_setup(folder: _ResultsDir, stage: str, diffs: list[str]) -> str:
    return f"{folder.path} holds {stage} results of another setup ({'; '.join(diffs[:8])})"


def _reusable_sums(folder: _ResultsDir, old, diffs: list[str], stage: str, log) -> dict | None:
    """The recorded sums when `old` (the manifest) differs in nothing (`diffs`); else None, after
    deleting what the differences make unusable: the shards when only the shard size differs
    (the results would be the same, but each shard holds other documents), else the folder."""
    if not diffs:
        return dict(old.get(SHARD_SUMS_KEY, {}))
    if len(diffs) == 1 and diffs[0].startswith(SHARD_DOCS_KEY + ":"):
        if os.path.isdir(folder.shard_dir) and os.listdir(folder.shard_dir):
            log(f"{folder.shard_dir} holds shards of another size ({diffs[0]}): removing them")
        shutil.rmtree(folder.shard_dir, ignore_errors=True)
    else:
        log(f"{_other_setup(folder, stage, diffs)}; recomputing")
        shutil.rmtree(folder.path)
    return None


_NPZ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error)


def _unreadable(path: str, err: Exception) -> ValueError:
    return ValueError(
        f"{path} is not a readable .npz file ({type(err).__name__}: {err}); delete it and run "
        "again (a shard is recomputed)."
    )


def open_npz(path: str):
    """`np.load` of a shard or results file; a damaged file raises ValueError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as err:
        raise _unreadable(path, err) from err


def npz_member(npz, key: str, path: str) -> np.ndarray:
    """`npz[key]` of the file `path` opened by `open_npz`; damage raises ValueError naming it."""
    try:
        return npz[key]
    except _NPZ_ERRORS as err:
        raise _unreadable(path, err) from err


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of the .npz file `path`, read whole."""
    with open_npz(path) as f:
        return {k: npz_member(f, k, path) for k in f.files}
