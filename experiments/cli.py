"""Shared behaviour of the absl launchers: quiet library logs, one-line errors for known failures,
output folders checked before work starts and not left behind empty by a failed launch."""

from __future__ import annotations

import logging as std_logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence

from absl import app, flags, logging


class _QuietOrbax(std_logging.Filter):
    """Drops orbax's INFO chatter (several lines per checkpoint) from the absl log."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


class OutputFolderError(ValueError):
    """A folder flag names something that cannot be used as a folder (e.g. an existing file)."""


def _library_errors() -> tuple[type[BaseException], ...]:
    from attn_interp.data import FetchError
    from attn_interp.train import CheckpointError

    return (ValueError, OSError, CheckpointError, FetchError)


def check_folder(flag: str, path: str) -> str:
    """The absolute path of folder flag `--flag=path`; an existing non-folder is refused."""
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(full) and not os.path.isdir(full):
        raise OutputFolderError(
            f"--{flag}={path} is a file, not a folder: pass the path of a folder."
        )
    return full


def _holds_files(folder: str) -> bool:
    return any(files for _, _, files in os.walk(folder))


def enable_compilation_cache() -> str:
    """Turns on JAX's persistent compilation cache; returns its folder.

    The folder is `<cache_dir>/jax_cache` (the launcher's --cache_dir flag when it has one, else
    $ATTN_INTERP_CACHE or ~/.cache/attn_interp), unless $JAX_COMPILATION_CACHE_DIR names another.
    A re-run, or a second model with the same shapes, then loads its XLA programs instead of
    compiling them. JAX keys every entry by the program, the JAX / jaxlib versions, the XLA flags
    and the device, so a changed model or setup compiles anew rather than loading a stale one.
    """
    import jax

    from attn_interp.data.fetch import resolve_cache_dir

    folder = jax.config.jax_compilation_cache_dir
    if not folder:
        given = flags.FLAGS["cache_dir"].value if "cache_dir" in flags.FLAGS else None
        folder = os.path.join(resolve_cache_dir(given), "jax_cache")
        jax.config.update("jax_compilation_cache_dir", folder)
    # Cache every program that took noticeable time to compile (JAX's default skips those < 1 s).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def launch(
    run: Callable[[], object], folder_flags: Sequence[str] = ()
) -> Callable[[list[str]], None]:
    """An absl `main` that runs `run()`; library errors (which name the cause and the fix) become
    one logged line and exit status 1 instead of a traceback.

    folder_flags: names of flags that give folders (`--workdir`, `--out_dir`): each is checked
    before `run()` (a file there is one clear error line), and a folder this launch created is
    removed again when the launch fails before writing any file into it.
    JAX's persistent compilation cache is on (`enable_compilation_cache`).
    """

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        std_logging.getLogger("absl").addFilter(_QuietOrbax())
        created: list[str] = []
        try:
            for name in folder_flags:
                value = flags.FLAGS[name].value
                if value:
                    path = check_folder(name, value)
                    if not os.path.exists(path):
                        created.append(path)
            enable_compilation_cache()
            run()
        except BaseException as err:
            for path in created:  # a failed launch leaves no empty folder behind
                if os.path.isdir(path) and not _holds_files(path):
                    shutil.rmtree(path, ignore_errors=True)
            if not isinstance(err, _library_errors()):
                raise
            logging.error("%s: %s", type(err).__name__, err)
            sys.exit(1)

    return main
