"""The shared experiment runner: resume, partial outputs, atomic items, Ctrl-C (no training: plain items)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lenet_tf import interrupts
from lenet_tf.errors import LenetError
from lenet_tf.experiments.runner import Experiment, Item, Progress, run_experiment
from lenet_tf.rundir import read_json, write_json


def _experiment(out: Path, ran: list[int], written: list[tuple[int, int]], *, fail_at: int | None = None) -> Experiment:
    plan = [Item(f"items/item_{i}", {"i": i}) for i in range(3)]

    def run_item(item: Item, directory: Path) -> dict:
        if item["i"] == fail_at:
            raise RuntimeError("killed")
        ran.append(item["i"])
        return {"square": item["i"] ** 2}

    def write_outputs(records, progress: Progress):
        written.append((progress.done, progress.total))
        report = {"squares": [r["square"] for _, r in records], "note": progress.note()}
        return report, {"json": write_json(out / "report.json", report)}

    return Experiment("squares", plan, run_item, write_outputs)


def _run(experiment: Experiment, out: Path, messages: list[str] | None = None):
    echo = messages.append if messages is not None else (lambda _: None)
    return run_experiment(experiment, out, {"kind": "squares", "seed": 0}, progress=False, echo=echo)


def test_items_are_saved_as_they_finish_and_a_rerun_skips_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    ran: list[int] = []
    written: list[tuple[int, int]] = []
    with pytest.raises(RuntimeError, match="killed"):
        _run(_experiment(out, ran, written, fail_at=2), out)
    assert ran == [0, 1] and read_json(out / "items" / "item_1" / "metrics.json") == {"square": 1}
    assert not (out / "items" / "item_2").exists()  # the failed item left nothing behind
    # Before item 2 ran, the outputs covered the 2 finished items, marked unfinished.
    report = read_json(out / "report.json")
    assert report["squares"] == [0, 1] and report["note"].startswith("**2 of 3 items finished so far**")
    ran.clear()
    written.clear()
    messages: list[str] = []
    result = _run(_experiment(out, ran, written), out, messages)
    assert ran == [2]  # finished items are read back, not run again
    assert result.resumed and any(m.startswith("resuming the squares in") for m in messages)
    assert result["squares"] == [0, 1, 4] and result.report["note"] == ""
    assert [r["square"] for r in result.records] == [0, 1, 4] and result.paths["json"] == out / "report.json"
    assert written == [(2, 3), (3, 3)]  # partial before the item that runs, final at the end


def test_a_bad_seed_is_refused_before_the_run_directory_exists(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path / "run", [], [])
    with pytest.raises(LenetError, match=r"seed must be an integer in \[0, 4294967295\], got -1"):
        run_experiment(experiment, tmp_path / "run", {"seed": -1}, progress=False, echo=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_an_error_after_ctrl_c_is_the_interruption(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path / "run", [], [], fail_at=1)
    interrupts._requested["sigint"] = True  # as the handler records a Ctrl-C that something swallowed
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(experiment, tmp_path / "run")
    finally:
        interrupts._requested["sigint"] = False
    assert not (tmp_path / "run" / "items" / "item_0" / "metrics.json").exists()  # checked before each item


@pytest.fixture(scope="module")
def finished_evaluation(tiny, tmp_path_factory):
    """One finished evaluation (an MLP, one repeat of one epoch), trained once for the damage cases below."""
    from lenet_tf.experiments.evaluation import EvaluationSpec, evaluate
    from lenet_tf.training import TrainConfig

    spec = EvaluationSpec(model="mlp", repeats=1, max_train=200, train=TrainConfig(epochs=1))
    out = tmp_path_factory.mktemp("evaluation") / "run"
    evaluate(spec, out, data=tiny, progress=False, echo=lambda _: None)
    return spec, out


@pytest.mark.parametrize(
    "damage",
    [[1, 2], {}, {"test_accuracy": "high"}, "the record", None],
    ids=["a list", "empty", "a string figure", "a string", "null"],
)
def test_a_damaged_item_record_is_named_in_one_line(damage, finished_evaluation, tiny, tmp_path: Path) -> None:
    """Issue 28: every JSON a command reads back: an item's record edited or damaged after it was
    written gives one LenetError naming it, never a traceback or a wrong figure."""
    from lenet_tf.experiments.evaluation import evaluate

    spec, finished = finished_evaluation
    shutil.copytree(finished, tmp_path / "run")  # this case's own copy of the finished evaluation
    record = tmp_path / "run" / "repeats" / "repeat_01" / "metrics.json"
    record.write_text(json.dumps(damage))
    with pytest.raises(LenetError, match=r"repeat_01") as raised:
        evaluate(spec, tmp_path / "run", data=tiny, progress=False, echo=lambda _: None)
    assert "\n" not in str(raised.value)
