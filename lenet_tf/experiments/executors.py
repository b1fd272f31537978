"""Where an experiment's items run: here, one after another, or as Ray tasks on a cluster.

The runner (:mod:`.runner`) decides which items are pending and claims them; an executor runs the
claimed items and hands each finished one back (``done``), in whatever order they finish. The
driver alone writes the records, the outputs and the progress bar, so ``serial`` and ``ray`` leave
the same files behind.

Ray: each item is one task (``--ray-cpus``, ``--ray-gpus`` per task; a fraction of a GPU lets
small LeNets share one). A task whose worker process dies (killed, out of memory, a node lost) is
run again by Ray (``max_retries``). Where the item's files go (``--ray-files``):

* ``return`` (the default): the task trains in a temporary folder on its node and returns the
  item's files with its record; the driver writes them under ``--out``. No shared filesystem is
  needed; an item interrupted on its worker starts again from scratch.
* ``shared``: the task writes into ``--out`` itself, which must be the same path on every node
  (NFS or another shared filesystem); a rerun item resumes from its members already saved.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import interrupts
from ..errors import LenetError

# The runner's side: the pending items (item, its folder), ``claim(item)`` (False: finished or
# another driver's), the item function, ``done(item, record, files)`` and ``before()`` (rewrite the
# outputs). ``run`` returns how many items it ran.
Items = Sequence[tuple[Any, Path]]
Claim = Callable[[Any], bool]
RunItem = Callable[[Any, Path], dict[str, Any]]
Done = Callable[[Any, dict[str, Any], Mapping[str, bytes] | None], None]
# Ray runs a task again when its worker process dies; an error the item raises is not retried.
RAY_TASK_RETRIES = 3
TASK_FILE = "ray_task.json"  # in an item's folder: the node and process that ran it
NICENESS_ENV = "RAY_worker_niceness"  # read by the raylet Ray starts


class SerialExecutor:
    """Today's way: the items one after another in this process, each claimed just before it
    runs (so two serial commands on one run directory share its items)."""

    name = "serial"

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def run(self, items: Items, claim: Claim, run_item: RunItem, done: Done, before: Callable[[], None]) -> int:
        ran = 0
        for item, directory in items:
            if not claim(item):
                continue
            before()  # the outputs cover every finished item before a long one starts
            interrupts.check()
            done(item, run_item(item, directory), None)
            ran += 1
        return ran


@dataclass
class RayExecutor:
    """Each item a Ray task on the cluster at ``address`` (``local``: one started for the run)."""

    address: str = "local"
    cpus: float = 1.0
    gpus: float = 0.0
    files: str = "return"
    words: Mapping[str, str] | None = None  # how errors name the options (library names or flags)

    name = "ray"

    def _word(self, name: str) -> str:
        return (self.words or {}).get(name, name)

    def check(self) -> None:
        """Refuse at once (before data is read or anything trains) what cannot work: Ray missing,
        an address where no cluster answers."""
        if importlib.util.find_spec("ray") is None:
            raise LenetError(f"{self._word('executor')} ray needs Ray: pip install 'lenet_tf[cluster]' (or ray)")
        if self.address not in ("local", "auto"):
            host, _, port = self.address.rpartition(":")
            if not host or not port.isdigit():
                raise LenetError(f"{self._word('ray_address')} {self.address!r}: give local, auto or HOST:PORT")
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
            except OSError as exc:
                raise LenetError(
                    f"{self._word('ray_address')} {self.address}: no Ray cluster answers there ({exc.strerror or exc});"
                    f" start one (ray start --head --port {port}) or use {self._word('ray_address')} local"
                ) from exc

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Connected to the cluster (a local one started, then stopped) for the block."""
        self.check()
        import ray

        # A Ray instance started for the run gives its workers the driver's priority: Ray's default
        # (niceness 15) lets any other process of the machine starve the trainings. A cluster's own
        # nodes keep what their administrator chose.
        saved = os.environ.get(NICENESS_ENV)
        if self.address == "local":
            os.environ.setdefault(NICENESS_ENV, "0")
        try:
            # Workers' progress bars stay in Ray's logs: the driver's bar counts finished items.
            local = {"include_dashboard": False} if self.address == "local" else {}
            ray.init(address=self.address, log_to_driver=False, configure_logging=False, **local)
        except ConnectionError as exc:
            raise LenetError(f"{self._word('ray_address')} {self.address}: {str(exc).splitlines()[0]}") from exc
        finally:
            if saved is None:
                os.environ.pop(NICENESS_ENV, None)
        try:
            yield
        finally:
            ray.shutdown()

    def _task(self) -> Any:
        import ray

        threads = str(max(1, math.ceil(self.cpus)))
        # TensorFlow sizes its thread pools by the node's cores, not by the task's share of them.
        env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
        if self.gpus:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # tasks sharing a GPU must not each take all its memory
        return ray.remote(run_task).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=RAY_TASK_RETRIES, retry_exceptions=False,
            runtime_env={"env_vars": env},
        )  # fmt: skip

    def run(self, items: Items, claim: Claim, run_item: RunItem, done: Done, before: Callable[[], None]) -> int:
        """Every item this driver can claim submitted at once; each recorded as its task finishes."""
        import ray

        from .. import __version__

        mine = [(item, directory) for item, directory in items if claim(item)]
        if not mine:
            return 0
        task, shared_fn = self._task(), ray.put(run_item)  # the item function (and its data) sent once
        pending = {
            task.remote(shared_fn, item, str(directory), self.files, __version__): item for item, directory in mine
        }
        try:
            before()
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(ref)
                record, files = _result(ref)
                done(item, record, files)
                before()
        finally:
            for ref in pending:  # interrupted or failed: nothing of this run keeps training
                ray.cancel(ref, force=True)
        return len(mine)


def _result(ref: Any) -> tuple[dict[str, Any], Mapping[str, bytes] | None]:
    """The task's value; the item's own error (a LenetError) raised as itself, in one line."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, LenetError):
            raise LenetError(str(exc.cause)) from None
        raise


def run_task(run_item: RunItem, item: Any, directory: str, files: str, version: str) -> tuple[Any, Any]:
    """One item on a Ray worker: its record and, for ``files="return"``, its files (path → bytes),
    among them :data:`TASK_FILE`, where it ran."""
    from .. import __version__

    if version != __version__:
        raise LenetError(
            f"a Ray worker has lenet_tf {__version__}, the driver {version}: install the same on every node"
        )
    if files == "shared":
        record = run_item(item, Path(directory))
        _write_placement(Path(directory))
        return record, None
    with tempfile.TemporaryDirectory(prefix="lenet_tf-item-") as tmp:
        local = Path(tmp) / "item"
        record = run_item(item, local)
        _write_placement(local)
        return record, {str(p.relative_to(local)): p.read_bytes() for p in sorted(local.rglob("*")) if p.is_file()}


def _write_placement(directory: Path) -> None:
    """Where the item ran (beside its record, not in it: the record is the same wherever it runs)."""
    import ray

    from ..rundir import write_json

    context = ray.get_runtime_context()
    write_json(directory / TASK_FILE, {
        "executor": "ray", "node_id": context.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(), "pid": os.getpid(), "task_id": context.get_task_id(),
    })  # fmt: skip


def make_executor(options: Any = None, words: Mapping[str, str] | None = None) -> SerialExecutor | RayExecutor:
    """The executor an :class:`~lenet_tf.options.ExecutorOptions` asks for (None: serial)."""
    if options is None or options.executor == "serial":
        return SerialExecutor()
    return RayExecutor(options.ray_address, options.ray_cpus, options.ray_gpus, options.ray_files, words)


def executor_from_args(args: Any) -> SerialExecutor | RayExecutor:
    """The executor a parsed command line asks for (its errors naming the flags), checked before
    any data is read: Ray installed, its cluster answering. Ray itself starts when the run does."""
    from ..options import ExecutorOptions, cli_words, validate, values_for

    words = cli_words(ExecutorOptions)
    executor = make_executor(validate(ExecutorOptions(**values_for(ExecutorOptions, args)), words), words)
    if executor.name != "serial":
        executor.check()
    return executor


def resolve_executor(executor: Any) -> Any:
    """What an experiment's ``executor`` parameter may be: None or ``"serial"``, ``"ray"`` (a local
    Ray instance), an :class:`~lenet_tf.options.ExecutorOptions` (checked, errors naming its fields)
    or an executor itself (:class:`SerialExecutor`, :class:`RayExecutor`)."""
    from ..options import ExecutorOptions, validate

    if executor is None or isinstance(executor, str):
        executor = ExecutorOptions(executor=executor or "serial")
    if isinstance(executor, ExecutorOptions):
        return make_executor(validate(executor))
    if not (callable(getattr(executor, "run", None)) and callable(getattr(executor, "session", None))):
        raise LenetError(f"executor must be 'serial', 'ray', an ExecutorOptions or an executor, got {executor!r}")
    return executor
