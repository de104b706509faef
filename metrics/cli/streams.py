"""Output streams of the command-line verbs: what to do when the reader goes away."""

from __future__ import annotations

import os
import sys


def reader_left() -> None:
    """`tradewatch tail | head`: the pipe closed. Point stdout at /dev/null so Python's
    final flush does not print a BrokenPipeError traceback, as the Python docs advise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a real file (a test's StringIO): nothing to flush later
