"""Ctrl-C that is never lost or mistaken for a crash (no TensorFlow import: the CLI loads this first).

Python turns Ctrl-C into ``KeyboardInterrupt`` wherever the main thread happens to be. Two places
there mishandle it: a weakref or ``__del__`` callback prints "Exception ignored" and swallows it
(the run then goes on as if nothing happened), and TensorFlow's graph tracing (pybind11) turns it
into a ``RuntimeError``. So the handler also records the request: training checks the record after
every epoch, and any error raised after a request is re-raised as the interruption.

The record is process-wide on purpose: a signal is delivered to the process, not to one object.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = {"sigint": False}


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed but swallowed on the way."""
    if _requested["sigint"]:
        raise KeyboardInterrupt


@contextmanager
def as_interruption() -> Iterator[None]:
    """Re-raise an error that follows a Ctrl-C as ``KeyboardInterrupt``.

    Needed wherever a caller catches ``Exception``: keras-tuner would log the trial as failed.
    """
    try:
        yield
    except Exception as exc:
        if _requested["sigint"]:
            raise KeyboardInterrupt from exc
        raise


def _on_sigint(_signum: int, frame: FrameType | None) -> None:
    _requested["sigint"] = True
    if _in_finalizer(frame):
        # Raised here, Python would print "Exception ignored in …" with a traceback and swallow it;
        # the record makes training's next epoch check (or any later error) the interruption.
        return
    raise KeyboardInterrupt


def _in_finalizer(frame: FrameType | None) -> bool:
    """Whether the code a signal interrupted is a finalizer: a weakref callback or a ``__del__``."""
    if frame is None:
        return False
    code = frame.f_code
    return code.co_name == "__del__" or code.co_filename.endswith(("weakref.py", "_weakrefset.py"))


@contextmanager
def handle_ctrl_c() -> Iterator[None]:
    """Record Ctrl-C (and raise ``KeyboardInterrupt`` as usual) inside the block.

    Any error that escapes the block after a Ctrl-C leaves it as ``KeyboardInterrupt``. A process
    started with Ctrl-C ignored (``nohup``, a shell's background job) keeps ignoring it.
    """
    _requested["sigint"] = False
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        with as_interruption():
            yield
    finally:
        signal.signal(signal.SIGINT, previous)
