"""Shared behaviour of the absl launchers: quiet library logs, one-line errors for known failures."""

from __future__ import annotations

import logging as std_logging
import sys
from collections.abc import Callable

from absl import app, logging


class _QuietOrbax(std_logging.Filter):
    """Drops orbax's INFO chatter (several lines per checkpoint) from the absl log."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def _library_errors() -> tuple[type[BaseException], ...]:
    from attn_interp.data import FetchError
    from attn_interp.train import CheckpointError

    return (ValueError, OSError, CheckpointError, FetchError)


def launch(run: Callable[[], object]) -> Callable[[list[str]], None]:
    """An absl `main` that runs `run()`; library errors (which name the cause and the fix) become
    one logged line and exit status 1 instead of a traceback."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        std_logging.getLogger("absl").addFilter(_QuietOrbax())
        try:
            run()
        except _library_errors() as err:
            logging.error("%s: %s", type(err).__name__, err)
            sys.exit(1)

    return main
