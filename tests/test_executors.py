"""Where an experiment's items run: a real Ray cluster on loopback (a head and a second node started
here, stopped by killing their own process groups, never ``ray stop``), the serial executor, and two
drivers on one run directory (item claims)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lenet_tf.cli import main
from lenet_tf.errors import LenetError
from lenet_tf.experiments.claims import CLAIMS_DIR
from lenet_tf.experiments.evaluation import EvaluationSpec, evaluate
from lenet_tf.experiments.executors import NICENESS_ENV, TASK_FILE, RayExecutor, resolve_executor
from lenet_tf.experiments.runner import Experiment, Item, run_experiment
from lenet_tf.options import RAY_OPTIONS, ExecutorOptions
from lenet_tf.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
needs_ray = pytest.mark.skipif(not RAY.is_file(), reason="Ray is not installed (pip install 'lenet_tf[cluster]')")
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """``ray start … --block`` in a process group of its own: killing the group stops that node alone."""
    with log.open("w") as handle:
        return subprocess.Popen([str(RAY), "start", *args, "--num-cpus", "1", "--block"], start_new_session=True,
                                env={**os.environ, **RAY_ENV}, stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the node's raylet, store, workers: its group alone
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a second node on 127.0.0.1 (one CPU each); yields the head's address."""
    port, temp = _free_port(), Path(tempfile.mkdtemp(prefix="lr", dir="/tmp"))  # short: Ray's socket paths
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)  # this process is the driver
    nodes = [_start(["--head", "--port", str(port), "--temp-dir", str(temp), "--include-dashboard", "false"],
                    temp / "head.log")]  # fmt: skip
    try:
        _wait_for(lambda: _answers(port), "the head", temp / "head.log")
        nodes.append(_start(["--address", f"127.0.0.1:{port}"], temp / "node.log"))
        import ray

        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, configure_logging=False)
        try:
            _wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, "the second node", temp / "node.log")
        finally:
            ray.shutdown()
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _wait_for(ready: Any, what: str, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start in {seconds} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)


def _without_times(value: Any) -> Any:
    """A record less its wall-clock fields (the only ones that may differ between executors)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


@needs_ray
def test_ray_items_run_on_both_nodes_and_equal_the_serial_run(cluster: str, tiny: Any, tmp_path: Path) -> None:
    # Two repeats, two 1-CPU nodes: Ray must place the two items, submitted at once, on different nodes.
    spec = EvaluationSpec(model="standard", repeats=2, max_train=300, train=TrainConfig(epochs=1))
    serial = evaluate(spec, tmp_path / "serial", data=tiny, progress=False, echo=lambda _: None)
    messages: list[str] = []
    ray_run = evaluate(spec, tmp_path / "ray", data=tiny, progress=False, echo=messages.append,
                       executor=RayExecutor(address=cluster))  # fmt: skip
    assert [_without_times(r) for r in ray_run.records] == [_without_times(r) for r in serial.records]
    assert ray_run.summary["test_accuracy"] == serial.summary["test_accuracy"]
    tasks = [json.loads((tmp_path / "ray" / item.path / TASK_FILE).read_text()) for item, _ in ray_run.items]
    assert len({task["node_id"] for task in tasks}) == 2, tasks  # both nodes trained items
    assert {task["pid"] for task in tasks}.isdisjoint({os.getpid()})
    # The files came back to the driver ("return"): the evaluation reads each repeat's probabilities.
    assert all((tmp_path / "ray" / item.path / "test_probabilities.npy").is_file() for item, _ in ray_run.items)
    assert sum(m.startswith("repeat ") for m in messages) == 2
    # The executor is not part of the run: the serial command resumes the Ray run, nothing trained again.
    again = evaluate(spec, tmp_path / "ray", data=tiny, progress=False, echo=messages.append)
    assert again.resumed and again.records == ray_run.records


def _kill_once_experiment(marks: Path, names: list[str]) -> Experiment:
    """Items that record where they ran; the first attempt at ``item_b`` waits to be killed."""

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        first = marks / f"{item.path}.started"
        if item.path == "item_b" and not first.exists():
            first.write_text(str(os.getpid()))
            time.sleep(300)  # the test kills this worker long before
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "made_here.txt").write_text(str(os.getpid()))
        return {"name": item.path, "pid": os.getpid()}

    def write_outputs(records: Any, progress: Any) -> Any:
        return {"done": [record["name"] for _, record in records]}, {}

    return Experiment("fake", [Item(name) for name in names], run_item, write_outputs)


@needs_ray
@pytest.mark.parametrize("files", ["return", "shared"])
def test_a_worker_killed_mid_item_runs_the_item_again(cluster: str, tmp_path: Path, files: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    started = marks / "item_b.started"

    def kill_worker() -> None:
        _wait_for(started.exists, "item_b", started, seconds=120)
        time.sleep(0.5)
        os.kill(int(started.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_worker)
    killer.start()
    out = tmp_path / "run"
    result = run_experiment(_kill_once_experiment(marks, ["item_a", "item_b", "item_c"]), out, {"kind": "fake"},
                            progress=False, executor=RayExecutor(address=cluster, files=files))  # fmt: skip
    killer.join()
    assert result.report["done"] == ["item_a", "item_b", "item_c"]
    record = json.loads((out / "item_b" / "metrics.json").read_text())
    assert record["pid"] != int(started.read_text())  # the killed worker's item ran again elsewhere
    assert (out / "item_b" / "made_here.txt").read_text() == str(record["pid"])
    assert json.loads((out / "item_b" / TASK_FILE).read_text())["pid"] == record["pid"]


DRIVER = """\
import os, sys, time
from pathlib import Path
from lenet_tf.experiments.runner import Experiment, Item, run_experiment

log, out, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
slow = sys.argv[4] if len(sys.argv) > 4 else None

def run_item(item, directory):
    with log.open("a") as handle:
        handle.write(f"{item.path} {os.getpid()}\\n")
    time.sleep(120 if item.path == slow else seconds)
    return {"name": item.path, "pid": os.getpid()}

def write_outputs(records, progress):
    return {"done": [r["name"] for _, r in records]}, {}

plan = [Item(f"items/item_{i}") for i in range(4)]
run_experiment(Experiment("fake", plan, run_item, write_outputs), out, {"kind": "fake"}, progress=False)
print("finished", os.getpid())
"""


def _driver(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)  # fmt: skip


def _started(log: Path) -> list[tuple[str, int]]:
    lines = log.read_text().split("\n") if log.is_file() else []
    return [(name, int(pid)) for name, pid in (line.split() for line in lines if line)]


def test_two_drivers_share_the_items_and_never_run_one_twice(tmp_path: Path) -> None:
    log, out = tmp_path / "started.log", tmp_path / "run"
    first = _driver(tmp_path, str(log), str(out), "3")
    _wait_for(lambda: len(_started(log)) >= 1, "the first driver", log, seconds=60)
    second = _driver(tmp_path, str(log), str(out), "3")
    outputs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    started = _started(log)
    assert sorted(name for name, _ in started) == [f"items/item_{i}" for i in range(4)]  # each item once
    assert {pid for _, pid in started} == {first.pid, second.pid}  # and both drivers ran some
    for item in range(4):
        record = json.loads((out / "items" / f"item_{item}" / "metrics.json").read_text())
        assert (f"items/item_{item}", record["pid"]) in started


def test_a_killed_driver_s_item_is_taken_over_by_the_waiting_one(tmp_path: Path) -> None:
    log, out = tmp_path / "started.log", tmp_path / "run"
    first = _driver(tmp_path, str(log), str(out), "0", "items/item_0")  # item_0 takes 120 s
    _wait_for(lambda: ("items/item_0", first.pid) in _started(log), "the first driver", log, seconds=60)
    second = _driver(tmp_path, str(log), str(out), "0")
    _wait_for(lambda: len(_started(log)) >= 4, "the second driver", log, seconds=60)  # items 1-3 done meanwhile
    first.kill()  # the driver dies: its claim on item_0 goes with it
    first.wait(timeout=30)
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    assert "items/item_0: process" in output and "waiting for it" in output
    record = json.loads((out / "items" / "item_0" / "metrics.json").read_text())
    assert record["pid"] == second.pid
    assert sorted(name for name, pid in _started(log) if pid == second.pid) == [f"items/item_{i}" for i in range(4)]
    assert not list(out.rglob(".*.partial*"))


def test_force_is_refused_while_another_driver_runs(tmp_path: Path) -> None:
    log, out = tmp_path / "started.log", tmp_path / "run"
    first = _driver(tmp_path, str(log), str(out), "0", "items/item_0")
    try:
        _wait_for(lambda: len(_started(log)) >= 1, "the first driver", log, seconds=60)
        with pytest.raises(LenetError, match="another lenet_tf process is running this run"):
            run_experiment(_kill_once_experiment(tmp_path, ["x"]), out, {"kind": "other"}, force=True, progress=False)
    finally:
        first.kill()
        first.wait(timeout=30)
    assert (out / CLAIMS_DIR).is_dir() and (out / "config.json").is_file()  # nothing of that run was discarded


def test_executor_options_have_one_home() -> None:
    assert resolve_executor(None).name == "serial" and resolve_executor("ray").name == "ray"
    assert resolve_executor(ExecutorOptions(executor="ray", ray_cpus=2, ray_files="shared")).files == "shared"
    with pytest.raises(LenetError, match=r"^ray_cpus must be a number > 0, got 0"):
        resolve_executor(ExecutorOptions(executor="ray", ray_cpus=0))
    with pytest.raises(LenetError, match=r"^ray_address, ray_cpus, ray_gpus and ray_files apply with executor ray"):
        resolve_executor(ExecutorOptions(ray_files="shared"))
    with pytest.raises(LenetError, match="executor must be"):
        resolve_executor(42)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ray-files", "shared"], "--ray-address, --ray-cpus, --ray-gpus and --ray-files apply with --executor ray"),
        (["--executor", "ray", "--ray-address", "nowhere"], "--ray-address 'nowhere': give local, auto or HOST:PORT"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "--ray-address 127.0.0.1:9: no Ray cluster answers"),
        (["--executor", "ray", "--ray-gpus", "-1"], "argument --ray-gpus: must be a number ≥ 0, got '-1'"),
    ],
)
def test_the_command_line_refuses_what_the_executor_cannot_do(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    try:
        code = main(["evaluate", "--data", "sample", "--out", str(out), *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before anything was read or written


def test_without_ray_installed_the_executor_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(LenetError, match=r"executor ray needs Ray: pip install 'lenet_tf\[cluster\]'"):
        RayExecutor().check()


def test_every_runner_command_offers_the_executor() -> None:
    from lenet_tf.cli import COMMANDS

    offered = {name for name, c in COMMANDS.items() if any(cls is ExecutorOptions for _, cls, _ in c.groups)}
    assert offered == {"evaluate", "learning-curve", "study", "robustness", "baselines"}
    from lenet_tf.experiments import levers  # the runner's sixth experiment has its own command line

    dests = {action.dest for action in levers.build_parser()._actions}
    assert {"executor", *RAY_OPTIONS} <= dests


def test_the_executor_benchmark_refuses_a_bad_value_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "lenet_tf.experiments.executor_bench", "--rounds", "0"],
                            capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "executor_bench: error: argument --rounds: must be an integer ≥ 1, got '0'"
        " (see python -m lenet_tf.experiments.executor_bench --help)"
    ]


@needs_ray
def test_a_local_ray_instance_runs_its_tasks_at_the_driver_s_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    seen: dict[str, Any] = {}
    monkeypatch.delenv(NICENESS_ENV, raising=False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs, niceness=os.environ.get(NICENESS_ENV)))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with RayExecutor(address="local").session():
        pass
    assert seen["niceness"] == "0" and seen["address"] == "local"  # Ray's default 15 starves the trainings
    assert NICENESS_ENV not in os.environ  # the driver's environment is left as it was
    seen.clear()
    with RayExecutor(address="auto").session():  # a cluster keeps its administrator's choice
        pass
    assert seen["niceness"] is None and "include_dashboard" not in seen
