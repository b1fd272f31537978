"""Each module imports only what its job needs (issue 29, item 4): the held-out figures of any
classifier do not start TensorFlow, and the run-directory files know nothing of training records."""

from __future__ import annotations

import json
import subprocess
import sys

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
