"""Issue 31: the input scale lives inside the model, the output layer's L2 follows the reference,
both are recorded with the run, and a run or a model from before them is never taken for one."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import csv_text

from lenet_tf import options
from lenet_tf.cli import main
from lenet_tf.data import prepare
from lenet_tf.errors import LenetError
from lenet_tf.experiments.evaluation import EvaluationSpec, evaluate
from lenet_tf.models import (
    BUILDERS,
    SCALE_FACTORS,
    has_output_l2,
    input_scale_of,
    load_saved_model,
    optimized_lenet,
    own_input_scale,
    resolve_model,
    standard_lenet,
)
from lenet_tf.rundir import save_model
from lenet_tf.training import TrainConfig, set_seed


def test_every_model_scales_its_input_itself_with_its_own_default() -> None:
    reference = {"standard", "optimized", "standard-strided", "optimized-strided"}
    for name, builder in BUILDERS.items():
        model = builder()
        assert model.layers[0].name == "input_scale", name
        assert input_scale_of(model) == own_input_scale(name) == ("raw" if name in reference else "unit"), name
    assert set(SCALE_FACTORS) == set(options.INPUT_SCALES)
    assert {name for name in BUILDERS if has_output_l2(name)} == set(options.OUTPUT_L2_MODELS)


def test_the_output_layer_carries_the_dense_l2_as_the_reference_does() -> None:
    assert optimized_lenet().get_layer("probabilities").kernel_regularizer.l2 == pytest.approx(1.43e-3)
    assert optimized_lenet(output_l2=False).get_layer("probabilities").kernel_regularizer is None
    # The same weights, one more penalty: the loss of the reference's model is the larger.
    x = prepare(np.full((4, 28, 28), 128, dtype=np.uint8))
    y = np.arange(4)
    losses = []
    for output_l2 in (True, False):
        set_seed(1)
        losses.append(optimized_lenet(output_l2=output_l2).evaluate(x, y, verbose=0)[0])
    assert losses[0] > losses[1]


def test_raw_and_unit_differ_only_in_the_scaling_layer() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    set_seed(2)
    raw = standard_lenet(input_scale="raw")
    set_seed(2)
    unit = standard_lenet(input_scale="unit")
    # Feeding the unit model 255× its pixels is feeding the raw model the pixels themselves.
    np.testing.assert_allclose(raw.predict(prepare(images), verbose=0),
                               unit.predict(prepare(images) * 255, verbose=0), rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(LenetError, match="input_scale must be one of unit, raw"):
        standard_lenet(input_scale="minmax")


def test_a_saved_model_takes_kaggle_pixels_as_they_are(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    model = standard_lenet(input_scale="unit")
    save_model(model, tmp_path / "m.keras")
    loaded = load_saved_model(tmp_path / "m.keras")
    assert input_scale_of(loaded) == "unit"
    pixels = images[..., np.newaxis].astype("float32")  # no prepare, no /255: what a notebook has
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-6)


def test_a_model_from_before_the_scale_existed_is_refused(tmp_path: Path) -> None:
    old = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    old.save(tmp_path / "old.keras")
    with pytest.raises(LenetError, match=r"old\.keras: saved by a lenet_tf before 0\.2\.0"):
        load_saved_model(tmp_path / "old.keras")
    (tmp_path / "cut.keras").write_bytes((tmp_path / "old.keras").read_bytes()[:200])
    with pytest.raises(LenetError, match=r"cut\.keras: cannot load the model: the file is damaged"):
        load_saved_model(tmp_path / "cut.keras")


def test_resolve_model_records_both_choices_and_refuses_what_does_not_apply() -> None:
    _, info = resolve_model("optimized", "preset")
    assert (info["input_scale"], info["output_l2"]) == ("raw", True)
    _, info = resolve_model("lenet5-bn")
    assert (info["input_scale"], info["output_l2"]) == ("unit", None)
    builder, info = resolve_model("optimized", "preset", input_scale="unit", output_l2=False)
    assert input_scale_of(builder()) == "unit" and builder().get_layer("probabilities").kernel_regularizer is None
    with pytest.raises(LenetError, match="output_l2 applies to the optimized LeNets only"):
        resolve_model("standard", output_l2=False)
    with pytest.raises(LenetError, match="output_l2 applies to the optimized LeNets only"):
        EvaluationSpec(model="standard", output_l2=False).validate()


def test_a_run_recorded_before_the_choice_is_not_resumed(tiny, tmp_path: Path) -> None:
    spec = EvaluationSpec(model="standard", repeats=1, max_train=200, train=TrainConfig(epochs=1))
    evaluate(spec, tmp_path / "run", data=tiny, progress=False, echo=lambda _: None)
    config_path = tmp_path / "run" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["model"]["input_scale"] == "raw" and config["schema_version"] == 3
    # The same run as lenet_tf 0.1.0 recorded it: no input scale, schema 2.
    del config["model"]["input_scale"], config["model"]["output_l2"]
    config_path.write_text(json.dumps({**config, "schema_version": 2, "lenet_tf_version": "0.1.0"}))
    with pytest.raises(LenetError, match=r"model\.input_scale: None there, 'raw' now.*schema 2 \(models that take "
                       r"pixels divided by 255\)"):  # fmt: skip
        evaluate(spec, tmp_path / "run", data=tiny, progress=False, echo=lambda _: None)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lenet_tf.cli", *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--input-scale", "minmax"], "argument --input-scale: invalid choice: 'minmax'"),
        (["evaluate", "--model", "standard", "--no-output-l2"], "--no-output-l2 applies to the optimized LeNets only"),
        (["train", "--model", "lenet5-bn", "--no-output-l2"], "--no-output-l2 applies to the optimized LeNets only"),
    ],
)
def test_the_command_line_refuses_in_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    done = _cli(*argv, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) <= 2  # argparse: usage + the line
    assert not (tmp_path / "out").exists()


def test_the_recipe_of_the_flagship_keeps_unit_and_the_reference_raw(tiny, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        archive.writestr("train.csv", csv_text(tiny.train_images[:300], tiny.train_labels[:300]))
    for recipe, scale in (("flagship", "unit"), ("reference", "raw")):
        out = tmp_path / recipe
        # In this process (the command line's own parsing, no second TensorFlow start-up to wait for).
        argv = ["ensemble", "--recipe", recipe, "--model", "standard", "--members", "1", "--epochs", "1",
                "--no-refit", "--data", str(tmp_path / "d.zip"), "--out", str(out), "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        assert json.loads((out / "config.json").read_text())["model"]["input_scale"] == scale


def test_the_ledger_default_has_one_home() -> None:
    from lenet_tf.holdout import DEFAULT_LEDGER

    assert str(DEFAULT_LEDGER) == options.HOLDOUT_LEDGER
