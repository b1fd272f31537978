"""Ctrl-C that is never lost or mistaken for a crash (no TensorFlow import: the CLI loads this first).

Python turns Ctrl-C into ``KeyboardInterrupt`` wherever the main thread happens to be. Two places
there mishandle it: a weakref or ``__del__`` callback prints "Exception ignored" and swallows it
(the run then goes on as if nothing happened), and TensorFlow's graph tracing (pybind11) turns it
into a ``RuntimeError``. So the handler also records the request: training checks the record after
every epoch and the command line treats any error raised after a request as the interruption.

The record is process-wide on purpose: a signal is delivered to the process, not to one object.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = {"sigint": False}


def requested() -> bool:
    """Whether Ctrl-C was pressed while :func:`handle_ctrl_c` was active."""
    return _requested["sigint"]


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed but swallowed on the way."""
    if _requested["sigint"]:
        raise KeyboardInterrupt


def _on_sigint(_signum: int, _frame: FrameType | None) -> None:
    _requested["sigint"] = True
    raise KeyboardInterrupt


@contextmanager
def handle_ctrl_c() -> Iterator[None]:
    """Record Ctrl-C (and raise ``KeyboardInterrupt`` as usual) inside the block.

    A process started with Ctrl-C ignored (``nohup``, a shell's background job) keeps ignoring it.
    """
    _requested["sigint"] = False  # kept after the block, for the caller's error handling
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
