"""Each module imports only what its job needs (issue 29, item 4): the held-out figures of any
classifier do not start TensorFlow, and the run-directory files know nothing of training records."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("tensorflow", "keras")


def _modules_after_import(module: str) -> set[str]:
    """The top-level and package modules loaded by ``import module`` in a fresh interpreter (this
    test process has long imported everything, so only a new one can tell)."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["lenet_tf.metrics", "lenet_tf.rundir"])
def test_files_and_metrics_do_not_start_tensorflow(module: str) -> None:
    loaded = _modules_after_import(module)
    started = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert not started, f"import {module} loads {started[:5]}"


def test_run_directories_do_not_import_the_training_record() -> None:
    loaded = _modules_after_import("lenet_tf.rundir")
    assert "lenet_tf.options" not in loaded and "lenet_tf.training" not in loaded


def test_the_public_names_still_work() -> None:
    from lenet_tf import metrics, training
    from lenet_tf.options import complete_run_record

    assert training.accuracy is metrics.accuracy
    recorded = {"model": "standard", "train": {"epochs": 3}}
    assert complete_run_record(recorded)["train"] == {"ema_momentum": 0.0, "tensorboard": False, "epochs": 3}
    assert complete_run_record({"a": 1}) == {"a": 1}


def _private_uses(path: Path) -> list[str]:
    """Private names (``_x``) ``path`` takes from another lenet_tf module: imported, or read as an
    attribute of an imported module."""
    tree = ast.parse(path.read_text())
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and (node.level or (node.module or "").startswith("lenet_tf")) for alias in node.names}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("lenet_tf")):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name[:2] != "__"]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            if node.attr.startswith("_") and node.attr[:2] != "__":
                found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    """Issue 29, item 3: the benchmark called training's private ``_trainer`` / ``_inputs`` and the
    figures plots' ``_save``: what another module needs is public, documented API."""
    package = Path(__file__).resolve().parents[1] / "lenet_tf"
    uses = {str(p.relative_to(package)): found for p in sorted(package.rglob("*.py")) if (found := _private_uses(p))}
    assert not uses


def test_robustness_trains_through_the_one_fit(monkeypatch, tiny) -> None:
    """Issue 29, item 3: robustness.train_model had its own copy of the training and skipped what
    training.fit adds (label smoothing was once silently lost on that path)."""
    from lenet_tf import training
    from lenet_tf.data import split_data
    from lenet_tf.experiments.robustness import train_model
    from lenet_tf.models import mlp

    calls = []
    real_fit = training.fit
    monkeypatch.setattr(training, "fit", lambda *a, **k: calls.append(k["config"]) or real_fit(*a, **k))
    config = training.TrainConfig(epochs=1, label_smoothing=0.1)
    split = split_data(tiny, "evaluation", seed=0)
    _, result = train_model(mlp, split, adversarial_epsilon=0.1, config=config, progress=False)
    assert calls == [config] and result.extra["train_epsilon"] == 0.1


def _results_paths(path: Path) -> list[str]:
    """String constants of ``path`` that name a place under results/, docstrings and the command
    line's examples (``EPILOG``) aside."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            skip.add(id(first.value))  # a docstring
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EPILOG" for t in node.targets):
            skip.add(id(node.value))
    called = {id(a) for node in ast.walk(tree) if isinstance(node, ast.Call) for a in node.args}  # Path("results")
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in skip
            and isinstance(node.value, str)
            and ("results/" in node.value or (node.value == "results" and id(node) in called))]  # fmt: skip


def test_where_runs_land_is_decided_in_one_place() -> None:
    """Issue 29, item 9: the ``--out`` default was decided in eight places (cli.py and the scripts'
    specs); now options.default_out and options.RESULTS_DIR decide it for all."""
    package = Path(__file__).resolve().parents[1] / "lenet_tf"
    literal = {str(p.relative_to(package)): found for p in sorted(package.rglob("*.py"))
               if p.name != "options.py" and (found := _results_paths(p))}  # fmt: skip
    assert not literal


def test_every_experiment_opens_one_way_and_returns_one_result_type() -> None:
    """Issue 29, item 11: the results were ExperimentResult, lists (levers), dicts (tune, explore);
    the opening (validate, prepare_job, echo) was copied into each experiment."""
    import inspect

    from lenet_tf.experiments import (
        baselines,
        evaluation,
        exploration,
        learning_curve,
        levers,
        robustness,
        studies,
        tuning,
    )  # fmt: skip

    functions = [evaluation.evaluate, learning_curve.learning_curve, robustness.robustness, studies.study,
                 baselines.baselines, levers.measure_levers, tuning.tune, exploration.explore]  # fmt: skip
    assert {f.__name__: inspect.signature(f).return_annotation for f in functions} == {
        f.__name__: "ExperimentResult" for f in functions
    }
    for module in (evaluation, learning_curve, robustness, studies, baselines, levers):
        assert "prepare_job(" not in inspect.getsource(module), module.__name__  # open_experiment / prepare_split
