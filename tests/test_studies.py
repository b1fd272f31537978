from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from lenet_tf.cli import main
from lenet_tf.errors import LenetError
from lenet_tf.experiments.studies import (
    STUDIES,
    GradientMagnitudes,
    StudyConfig,
    StudySpec,
    study,
    study_configurations,
)
from lenet_tf.seeds import repeat_seed
from lenet_tf.training import TrainConfig


def test_gradient_magnitudes_match_a_hand_computed_linear_softmax() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    b = np.array([0.1, 0.0, -0.1], dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="out")])
    model.set_weights([w, b])
    x = rng.random((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0])
    logits = x.astype(np.float64) @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    kernel_gradient = x.T.astype(np.float64) @ (p - np.eye(3)[y]) / len(x)  # of the mean cross-entropy

    callback = GradientMagnitudes(x, y)
    callback.set_model(model)
    now = callback.record()
    assert now == {"out": pytest.approx(np.abs(kernel_gradient).mean(), rel=1e-5)}
    callback.record()
    assert len(callback.magnitudes["out"]) == 2  # one value per call (epoch)


def test_named_studies_are_the_issue_grids() -> None:
    labels = {name: [c.label for c in study_configurations(name)] for name in STUDIES}
    assert labels["activation"] == ["sigmoid", "tanh", "relu", "gelu", "elu"]
    assert labels["initialization"] == ["random_normal", "glorot_uniform", "he_normal"]
    assert labels["dropout"] == ["dropout_0", "dropout_0.2", "dropout_0.5"]
    assert labels["batch_size"] == ["batch_32", "batch_64", "batch_128"]
    assert len(labels["optimizer"]) == 13 and "momentum_lr0.0001" in labels["optimizer"]
    assert labels["optimizer"][-1] == "step_decay_lr0.1"
    for name in STUDIES:
        for config in study_configurations(name):
            config.validate()  # every configuration builds


def test_step_decay_converts_epochs_to_optimizer_steps() -> None:
    (config,) = study_configurations("optimizer", ["step_decay_lr0.1"])
    model = config.builder(train_images=100, batch_size=32)()  # 4 steps per epoch
    schedule = keras.optimizers.schedules.deserialize(model.optimizer.get_config()["learning_rate"])
    # the rate at update k (k updates done): 0.1 for the first 10 epochs' 40 updates, then 0.01, 0.001
    assert [float(schedule(step)) for step in (0, 39, 40, 79, 80)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_study_table_plots_gradients_and_resume(tiny, tmp_path: Path) -> None:
    configs = (*study_configurations("activation", ["relu"]), *study_configurations("batch_size", ["batch_128"]))
    spec = StudySpec(name="mixed", repeats=2, configurations=configs, train=TrainConfig(epochs=1, patience=1))
    out = tmp_path / "study"
    partial: list[str] = []

    def snapshot(message: str) -> None:  # the study's outputs are rewritten before every training
        if message.startswith("relu:"):
            partial.append((out / "study.md").read_text())

    result = study(spec, out, data=tiny, progress=False, echo=snapshot)
    assert "**1 of 4 trainings finished so far**; rerun the same command to continue" in partial[0]
    assert "so far" not in (out / "study.md").read_text()
    assert list(result["runs"]) == ["relu", "batch_128"]
    relu = result["runs"]["relu"]
    assert [r["seed"] for r in relu] == [repeat_seed(0, 0), repeat_seed(0, 1)] and relu[0]["test_accuracy"] != relu[1][
        "test_accuracy"
    ]
    assert [r["batch_size"] for r in result["runs"]["batch_128"]] == [128, 128]
    summary = result["summary"]["relu"]
    tests = [r["test_accuracy"] for r in relu]
    assert summary["test_accuracy"]["mean"] == pytest.approx(np.mean(tests))
    assert summary["test_accuracy"]["std"] == pytest.approx(np.std(tests, ddof=1))
    for run in relu:  # epoch 0 (initialisation) plus one value per epoch trained
        assert set(run["gradients"]) == {"conv_1", "conv_2", "dense_1", "dense_2", "probabilities"}
        assert all(len(v) == run["epochs_run"] + 1 for v in run["gradients"].values())
    markdown = (out / "study.md").read_text()
    assert f"{np.mean(tests):.4f} ± {np.std(tests, ddof=1):.4f}" in markdown
    assert "| relu | activation=relu |" in markdown and "batch_size=128" in markdown
    for name in ("accuracy.png", "convergence.png", "gradients.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "learning_rates.png").exists()  # no learning-rate grid in this study
    assert json.loads((out / "study.json").read_text())["summary"]["relu"]["test_accuracy"]["n"] == 2

    done = out / "configurations" / "relu" / "repeat_01" / "metrics.json"
    stamp = done.stat().st_mtime_ns
    messages: list[str] = []
    grown = study(
        StudySpec(name="mixed", repeats=3, configurations=configs[:1], train=TrainConfig(epochs=1, patience=1)),
        out, data=tiny, progress=False, echo=messages.append,
    )  # fmt: skip
    assert any(m.startswith("resuming the study") for m in messages)
    assert done.stat().st_mtime_ns == stamp  # finished trainings are read back
    assert [r["test_accuracy"] for r in grown["runs"]["relu"][:2]] == tests
    assert grown["summary"]["relu"]["test_accuracy"]["n"] == 3

    other = (StudyConfig("relu", {"activation": "elu"}),)  # same label, other settings
    with pytest.raises(LenetError, match="holds configuration relu with other settings"):
        study(StudySpec(name="mixed", repeats=1, configurations=other, train=TrainConfig(epochs=1, patience=1)),
              out, data=tiny, progress=False, echo=lambda _: None)  # fmt: skip


def test_optimizer_study_plots_learning_rates(tiny, tmp_path: Path) -> None:
    configs = tuple(study_configurations("optimizer", ["sgd_lr0.01", "sgd_lr0.1"]))
    spec = StudySpec(name="optimizer", repeats=1, configurations=configs, train=TrainConfig(epochs=1))
    study(spec, tmp_path / "opt", data=tiny, progress=False, echo=lambda _: None)
    assert (tmp_path / "opt" / "learning_rates.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ((StudyConfig("x", {"activation": "softmax"}),), "configuration x: unknown activation 'softmax'"),
        ((StudyConfig("x", {"initializer": "zeros"}),), "configuration x: unknown initializer 'zeros'"),
        ((StudyConfig("x", {"dropout": 1.0}),), r"configuration x: dropout must be a rate in \[0, 1\)"),
        ((StudyConfig("x", {"optimizer": "rmsprop"}),), "configuration x: unknown optimizer 'rmsprop'"),
        ((StudyConfig("x", {"learning_rate": -1.0}),), "configuration x: learning rate must be a positive number"),
        ((StudyConfig("x", {"optimizer": "step_decay"}),), "configuration x: step_decay needs two increasing"),
        ((StudyConfig("x", {"units": 3}),), "configuration x: unknown setting 'units'"),
        ((StudyConfig("x", batch_size=0),), "configuration x: batch size must be an integer ≥ 1"),
        ((StudyConfig("a b"),), "configuration label 'a b'"),
        ((StudyConfig("x"), StudyConfig("x")), "configuration label 'x' appears twice"),
        ((), "no configurations to train"),
    ],
)
def test_bad_configurations(configs, message: str) -> None:
    with pytest.raises(LenetError, match=message):
        StudySpec(name="custom", configurations=configs).resolved()


def test_bad_study_names_and_settings() -> None:
    with pytest.raises(LenetError, match="unknown study 'act'; choose one of activation, initialization"):
        study_configurations("act")
    with pytest.raises(LenetError, match="--only: study dropout has no configuration 'dropout_0.3'"):
        study_configurations("dropout", ["dropout_0.3"])
    with pytest.raises(LenetError, match="^repeats must be an integer ≥ 1"):  # the library's word
        StudySpec(repeats=0).validate()


def test_study_command_line(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["study", "--name", "dropout", "--only", "dropout_0.5", "--repeats", "1", "--epochs", "1",
            "--data", str(kaggle_dir), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert list(json.loads((out / "study.json").read_text())["runs"]) == ["dropout_0.5"]
    capsys.readouterr()
    assert main(["study", "--name", "speed", "--data", str(kaggle_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lenet-tf: error: unknown study 'speed'")
    help_text = main_help(["study", "--help"], capsys)
    assert all(name in help_text for name in STUDIES)


def main_help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out
