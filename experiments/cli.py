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


def launch(
    run: Callable[[], object], folder_flags: Sequence[str] = ()
) -> Callable[[list[str]], None]:
    """An absl `main` that runs `run()`; library errors (which name the cause and the fix) become
    one logged line and exit status 1 instead of a traceback.

    folder_flags: names of flags that give folders (`--workdir`, `--out_dir`): each is checked
    before `run()` (a file there is one clear error line), and a folder this launch created is
    removed again when the launch fails before writing any file into it.
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
