"""What the Ray executor costs against serial, measured side by side in one run (``make bench-executor``).

Three measurements on this machine, alternated round after round so that the machine's changing
pace falls on both sides:

* **the same small plan** (an evaluation: ``repeats`` repeats of the standard LeNet, ``epochs``
  epochs on ``max_train`` digits) run serially and through a local Ray instance whose tasks hold
  every core (``ray_cpus``: one item at a time with TensorFlow's threads as serial has them), the
  ratio of their wall times: what Ray adds to a real experiment;
* **Ray's session**: starting and stopping a local instance (``ray.init``/``ray.shutdown``);
* **per-item start-up**: a plan of ``noop_items`` items that do nothing, through Ray: the wall time
  per item less the session's, i.e. submitting a task, starting its worker and returning its record.

Results go to ``--out`` as ``executor_bench.json`` and ``executor_bench.md``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import options as opt
from ..errors import LenetError
from ..options import ExecutorBenchOptions
from ..rundir import environment, markdown_table, write_json, write_text


def _timed(call: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


def _noop_plan(items: int) -> Any:
    from .runner import Experiment, Item

    def write_outputs(records: Any, progress: Any) -> Any:
        return {}, {}

    return Experiment("noop", [Item(f"item_{i}") for i in range(items)], lambda item, d: {}, write_outputs)


def measure(options: ExecutorBenchOptions) -> dict[str, Any]:
    """Alternate serial and Ray on the same plan; return every round's times and the medians."""
    from ..data import load_data
    from ..training import TrainConfig
    from .evaluation import EvaluationSpec, evaluate
    from .executors import RayExecutor
    from .runner import run_experiment

    data = load_data(options.data)
    spec = EvaluationSpec(model="standard", repeats=options.repeats, max_train=options.max_train,
                          train=TrainConfig(epochs=options.epochs))  # fmt: skip
    ray = RayExecutor(address="local", cpus=options.ray_cpus)
    rounds, quiet = [], {"progress": False, "echo": lambda _: None}
    with tempfile.TemporaryDirectory(prefix="lenet_tf-bench-") as tmp:
        for r in range(options.rounds):
            serial = _timed(evaluate, spec, Path(tmp) / f"serial_{r}", data=data, **quiet)
            on_ray = _timed(evaluate, spec, Path(tmp) / f"ray_{r}", data=data, executor=ray, **quiet)
            session = _timed(_open_and_close, ray)
            noop_plan = _noop_plan(options.noop_items)
            noop = _timed(run_experiment, noop_plan, Path(tmp) / f"noop_{r}", {}, executor=ray, **quiet)
            rounds.append({"serial_s": serial, "ray_s": on_ray, "ratio": on_ray / serial, "session_s": session,
                           "noop_s": noop, "per_item_s": (noop - session) / options.noop_items})  # fmt: skip
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    return {"options": opt.record(options), "rounds": rounds, "median": medians, "environment": environment()}


def _open_and_close(executor: Any) -> None:
    with executor.session():
        pass


def markdown(result: dict[str, Any]) -> str:
    o, m = result["options"], result["median"]
    rows = [[i + 1, f"{r['serial_s']:.1f}", f"{r['ray_s']:.1f}", f"{r['ratio']:.2f}", f"{r['session_s']:.1f}",
             f"{r['per_item_s']:.2f}"] for i, r in enumerate(result["rounds"])]  # fmt: skip
    return (
        f"# The Ray executor against serial\n\nThe same plan ({o['repeats']} repeats of the standard LeNet, "
        f"{o['epochs']} epoch(s) on {o['max_train']} digits of `{o['data']}`) run serially and through a local Ray "
        f"instance (tasks of {o['ray_cpus']:g} cores), alternated over {len(result['rounds'])} rounds.\n\n"
        + markdown_table(["round", "serial s", "Ray s", "Ray / serial", "Ray session s", "per-item start-up s"], rows)
        + f"\n\nMedian ratio {m['ratio']:.2f}; Ray's session (start + stop) {m['session_s']:.1f} s; per-item"
        f" start-up {m['per_item_s']:.2f} s ({o['noop_items']} do-nothing items).\n"
    )


def build_parser() -> opt.ScriptParser:
    """The module's command line, from its option class (bounds, defaults and help declared once)."""
    return opt.ScriptParser("executor_bench", [(ExecutorBenchOptions, ())], description=__doc__.split("\n\n")[0],
                            prog="python -m lenet_tf.experiments.executor_bench")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_checked(argv)  # a bad value: one line, exit status 2
    options = ExecutorBenchOptions(**opt.values_for(ExecutorBenchOptions, args))
    try:
        result = measure(options)
    except LenetError as exc:
        print(f"executor_bench: error: {exc}", file=sys.stderr)
        return 2
    out = Path(options.out)
    write_json(out / "executor_bench.json", result)
    write_text(out / "executor_bench.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
