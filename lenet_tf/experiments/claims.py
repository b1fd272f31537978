"""Which process runs what in a run directory: a lock per item, a lock for the run.

Two commands pointed at one run directory (two drivers, on one machine or on two that share the
directory) must never train the same item. Each item is claimed by an exclusive lock on its own
file before it runs and released once its record is written; a driver that finds an item claimed
skips it, runs the others, then waits for that item (loading it when the other driver finished
it, running it when that driver died first).

The locks are the operating system's (``flock``, one per open file): a killed process loses its
locks at once, so no claim outlives its driver and nothing needs cleaning up. On NFS, Linux maps
them to the server's byte-range locks (``lockd``/NFSv4), so drivers on two machines exclude each
other too. The lock files stay (tiny): deleting a
lock file while another process waits on it would let two processes hold "the" lock.

The run lock: every driver holds a shared lock on the run for its lifetime. Only a driver alone in
the run (it gets the lock exclusively) may delete what a killed writer left behind, or let
``--force`` discard the run: with another driver alive, those files are being written.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO

from ..errors import LenetError

CLAIMS_DIR = ".lenet_tf_claims"
RUN_LOCK = "run.lock"


def _open(path: Path) -> IO[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a+", encoding="utf-8")
    except OSError as exc:
        raise LenetError(f"{path}: cannot create the lock file ({exc.strerror})") from exc


def _holder() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname()})


def _describe(handle: IO[str]) -> str:
    """``pid 123 on host``: who wrote the lock file last (the holder, while it holds it)."""
    handle.seek(0)
    try:
        who = json.loads(handle.read() or "{}")
        return f"process {who['pid']} on {who['host']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


class Claim:
    """An exclusive lock on one item of a run."""

    def __init__(self, run: Path, item_path: str):
        self.path = Path(run) / CLAIMS_DIR / (item_path.replace("/", "__") + ".lock")
        self._handle: IO[str] | None = None
        self.holder = ""

    def try_acquire(self) -> bool:
        """Take the claim if nobody holds it; else note who does (:attr:`holder`) and return False."""
        handle = _open(self.path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.holder = _describe(handle)
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(_holder())
        handle.flush()
        self._handle = handle
        return True

    def wait(self) -> None:
        """Block until the holder releases the claim (finished, or died), then let it go again."""
        handle = _open(self.path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class RunLock:
    """The run's lock: shared by every driver of the run, exclusive to a driver alone in it."""

    def __init__(self, run: Path):
        self.path = Path(run) / CLAIMS_DIR / RUN_LOCK
        self._handle: IO[str] | None = None

    def alone(self) -> bool:
        """Take the lock exclusively if no other driver holds it (True), else wait for nothing (False)."""
        self._handle = self._handle or _open(self.path)
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def share(self) -> None:
        """Hold the lock shared (an exclusive lock becomes shared): other drivers may join."""
        self._handle = self._handle or _open(self.path)
        fcntl.flock(self._handle, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def others_running(run: Path) -> bool:
    """Whether another driver holds ``run``'s lock now (False for a directory without one)."""
    if not (Path(run) / CLAIMS_DIR / RUN_LOCK).is_file():
        return False
    lock = RunLock(run)
    try:
        return not lock.alone()
    finally:
        lock.release()
