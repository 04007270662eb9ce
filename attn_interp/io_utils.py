"""Atomic file writes: a reader (or a resumed run) sees either the old file or the whole new one.

Every writer puts the content in a temporary file in the target's folder, gives it the mode a new
file would get (0666 less the umask: 0644 by default) or the mode of the file it replaces, flushes
and fsyncs it, then `os.replace`s it over the target (atomic on POSIX within one file system) and fsyncs the
folder. An interrupted or failed write leaves no partial target and removes its temporary file.

Out-of-space, read-only, quota and permission failures are re-raised as `OutputWriteError` (an
`OSError` with the same errno) whose message names the path and what to do about it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

__all__ = [
    "OutputWriteError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_npz",
    "atomic_write_text",
    "npz_bytes",
    "remove_stale_temp_files",
]

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space there or choose an output folder on another "
    "disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space there or choose an output folder on "
    "another disk",
    errno.EROFS: "the file system is read-only: choose a writable output folder (--workdir / "
    "--out_dir)",
    errno.EACCES: "permission denied: make the folder writable for this user or choose another "
    "output folder (--workdir / --out_dir)",
    errno.EPERM: "operation not permitted: make the folder writable for this user or choose "
    "another output folder (--workdir / --out_dir)",
}


class OutputWriteError(OSError):
    """A result file could not be written (disk full, read-only folder, no permission).

    `errno` is that of the underlying failure; `filename` is the target path.
    """


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


def _target_mode(path: str) -> int:
    """Permission bits for `path`: those of the file it replaces, else 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> str:
    """Calls `write(binary_file)` on a temporary file next to `path`, then moves it into place.

    Args:
      path: the target file; its folder is created if missing.
      write: fills the open binary file (it must not close it).

    Returns:
      The absolute target path.

    Raises:
      OutputWriteError: disk full, read-only file system, quota or permission failure; the message
        names the path and the fix. Nothing is left at the target or in temporary files.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
        os.fchmod(fd, _target_mode(path))  # mkstemp creates 0600: readable by the owner only
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as err:
        hint = _HINTS.get(err.errno)
        if hint is None or isinstance(err, OutputWriteError):
            raise
        raise OutputWriteError(
            err.errno, f"Could not write {path} ({os.strerror(err.errno)}): {hint}.", path
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Atomically writes `data` to `path`; returns the absolute path."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> str:
    """Atomically writes `text` (encoded with `encoding`) to `path`; returns the absolute path."""
    return atomic_write_bytes(path, text.encode(encoding))


def json_default(x: Any) -> Any:
    """`json.dumps(default=...)`: numpy scalars and arrays, tuples and sets as plain JSON."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (tuple, set, frozenset)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def atomic_write_json(
    path: str | os.PathLike,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = True,
    ensure_ascii: bool = True,
) -> str:
    """Atomically writes `obj` as JSON (numpy scalars/arrays and tuples become plain JSON).

    The content is serialised before the file is touched, so an unserialisable object leaves the
    old file in place.
    """
    text = json.dumps(
        obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=json_default
    )
    return atomic_write_text(path, text + ("\n" if indent is not None else ""))


def _plain_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    bad = sorted(k for k, v in arrays.items() if v.dtype == object)
    if bad:
        raise TypeError(f"object arrays {bad} would need pickle to load; convert them first.")
    return arrays


def atomic_write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> str:
    """Atomically writes `arrays` as an uncompressed .npz (no object arrays: loadable with
    ``np.load(path, allow_pickle=False)``)."""
    arrays = _plain_arrays(arrays)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """The bytes `atomic_write_npz` would write: for callers that record a checksum before the
    file is in place."""
    buf = io.BytesIO()
    np.savez(buf, **_plain_arrays(arrays))
    return buf.getvalue()


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Deletes the hidden ``.NAME.*.tmp`` files that a killed writer (SIGKILL, power loss) left in
    `folder`; returns their paths. Call it only while no other process writes into `folder`."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(".tmp"):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                os.unlink(path)
                removed.append(path)
    return removed
