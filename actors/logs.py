"""Logging setup, called once from the CLI: structured JSON lines (or plain text for the demo),
no variable values in tracebacks (``diagnose=False``: they can leak secrets)."""

from __future__ import annotations

import sys
from typing import TextIO

from loguru import logger


def setup(level: str = "INFO", *, json: bool = True, sink: TextIO | str | None = None) -> None:
    """``sink``: a stream, or a file path (default: stderr)."""
    logger.remove()
    target = sink if sink is not None else sys.stderr
    if json:
        logger.add(target, level=level, serialize=True, diagnose=False, backtrace=False)
    else:
        logger.add(target, level=level, diagnose=False, backtrace=False,
                   format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message} "
                          "<dim>{extra}</dim>")
