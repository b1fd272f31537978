from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from lenet_tf.cli import main
from lenet_tf.data import prepare, split_data
from lenet_tf.ensemble import Ensemble
from lenet_tf.errors import LenetError
from lenet_tf.experiments.robustness import (
    AdversarialTrainer,
    RobustnessSpec,
    accuracy_under_attack,
    fgsm,
    gradient_sign,
    robustness,
    train_model,
)
from lenet_tf.models import mlp
from lenet_tf.pipeline import JobSpec, run_training
from lenet_tf.training import TrainConfig, accuracy

W = np.array([[2.0, -1.0, 0.5], [-0.5, 1.5, -2.0], [1.0, 0.2, -0.3]], dtype=np.float32)
B = np.array([0.1, -0.2, 0.05], dtype=np.float32)


def _linear_softmax(learning_rate: float = 1.0) -> keras.Model:
    """softmax(x W + b) on 3 inputs x = pixels / 255 (scaled inside, as the package's models are):
    its input gradient is W (p - onehot(y)) / 255, known by hand."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Rescaling(1 / 255), keras.layers.Dense(3, "softmax")])
    model.set_weights([W, B])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy")
    return model


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _input_gradient(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = _softmax(x.astype(np.float64) @ W + B)
    return (p - np.eye(3)[y]) @ W.T.astype(np.float64)


def test_fgsm_matches_the_hand_computed_linear_softmax_case() -> None:
    x = np.array([[0.95, 0.5, 0.02], [0.3, 0.7, 0.99], [0.0, 1.0, 0.5]], dtype=np.float32)
    pixels = x * 255  # what the models take: Kaggle's 0-255
    y = np.array([1, 0, 2])
    gradient = _input_gradient(x, y)
    assert (gradient != 0).all()  # every sign is defined
    # ε is a fraction of full ink: 0.1 moves a pixel by 25.5 of 255.
    expected = np.clip(x + 0.1 * np.sign(gradient), 0, 1) * 255
    model = _linear_softmax()
    # batch_size 2 splits the three rows across batches: the result must not depend on batching
    np.testing.assert_array_equal(gradient_sign(model, pixels, y, batch_size=2), np.sign(gradient))
    np.testing.assert_allclose(fgsm(model, pixels, y, 0.1, batch_size=2), expected, atol=1e-4)
    big = fgsm(model, pixels, y, 0.5)
    assert big.min() >= 0 and big.max() <= 255  # clipped to the pixel range
    np.testing.assert_allclose(big, np.clip(x + 0.5 * np.sign(gradient), 0, 1) * 255, atol=1e-4)
    np.testing.assert_array_equal(fgsm(model, pixels, y, 0.0), pixels)


def test_adversarial_training_step_is_the_mean_over_clean_and_fgsm_copies() -> None:
    x = np.array([[0.95, 0.5, 0.02], [0.3, 0.7, 0.99]], dtype=np.float32)
    y = np.array([1, 0])
    epsilon = 0.2
    x_adv = np.clip(x + epsilon * np.sign(_input_gradient(x, y)), 0, 1)
    both, labels = np.concatenate([x, x_adv]).astype(np.float64), np.concatenate([y, y])
    residual = _softmax(both @ W + B) - np.eye(3)[labels]
    expected_w = W - both.T @ residual / len(both)  # one SGD step (rate 1) on the mean loss
    expected_b = B - residual.mean(axis=0)

    inner = _linear_softmax(learning_rate=1.0)
    trainer = AdversarialTrainer(inner, epsilon)
    trainer.train_on_batch(x * 255, y)
    new_w, new_b = inner.get_weights()  # the wrapped model holds the trained weights
    np.testing.assert_allclose(new_w, expected_w, atol=1e-5)
    np.testing.assert_allclose(new_b, expected_b, atol=1e-5)


def test_accuracy_at_epsilon_zero_is_the_clean_accuracy(tiny) -> None:
    split = split_data(tiny, "evaluation", seed=0)
    model, result = train_model(mlp, split, config=TrainConfig(epochs=2, patience=1), seed=1, progress=False)
    images = prepare(split.x_test)
    clean = accuracy(model.predict(images, verbose=0), split.y_test)
    under_attack = accuracy_under_attack(model, images, split.y_test, [0.0, 0.1, 0.3])
    assert under_attack[0.0] == clean
    assert clean > 0.5  # the MLP learns the tiny digits, so the attack has something to break
    assert under_attack[0.3] < under_attack[0.1] < clean

    adversarial, adv_result = train_model(
        mlp, split, adversarial_epsilon=0.1, config=TrainConfig(epochs=2, patience=1), seed=1, progress=False
    )
    assert adv_result.extra["train_epsilon"] == 0.1 and "val_accuracy" in adv_result.history
    assert isinstance(adversarial, keras.Sequential)  # the plain model, ready to save and load


def test_robustness_outputs_summary_and_resume(tiny, tmp_path: Path) -> None:
    out = tmp_path / "rob"
    spec = RobustnessSpec(
        model="mlp", repeats=2, epsilons=(0.0, 0.3), examples=3, train=TrainConfig(epochs=1, patience=1)
    )
    result = robustness(spec, out, data=tiny, progress=False, echo=lambda _: None)
    assert result["attacked"] == {"set": "held-out test part", "images": 120}
    for variant in ("normal", "adversarial"):
        items = result["variants"][variant]
        assert [i["repeat"] for i in items] == [1, 2]
        assert [i["accuracy"]["0"] for i in items] == [i["clean_accuracy"] for i in items]
        summary = result["summary"][variant]
        assert summary["0.3"]["mean"] == pytest.approx(np.mean([i["accuracy"]["0.3"] for i in items]))
        assert summary["0.3"]["std"] == pytest.approx(np.std([i["accuracy"]["0.3"] for i in items], ddof=1))
        assert (out / f"adversarial_examples_{variant}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "accuracy_vs_epsilon.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "robustness.md").read_text()
    assert "| ε | normal training | adversarial training (ε=0.1) |" in markdown
    normal = result["summary"]["normal"]["0.3"]
    assert f"| 0.3 | {normal['mean']:.4f} ± {normal['std']:.4f} |" in markdown
    assert json.loads((out / "robustness.json").read_text())["summary"] == result["summary"]

    model_file = out / "variants" / "normal" / "repeat_01" / "model.keras"
    stamp = model_file.stat().st_mtime_ns
    messages: list[str] = []
    wider = RobustnessSpec(
        model="mlp", repeats=2, epsilons=(0.0, 0.1, 0.3), examples=3, train=TrainConfig(epochs=1, patience=1)
    )
    again = robustness(wider, out, data=tiny, progress=False, echo=messages.append)
    assert any(m.startswith("resuming the robustness study") for m in messages)
    assert model_file.stat().st_mtime_ns == stamp  # a new ε attacks the saved model, nothing retrained
    first = again["variants"]["normal"][0]
    assert set(first["accuracy"]) == {"0", "0.1", "0.3"}
    assert first["accuracy"]["0.3"] == result["variants"]["normal"][0]["accuracy"]["0.3"]

    changed = RobustnessSpec(model="mlp", repeats=2, train_epsilon=0.2, train=TrainConfig(epochs=1, patience=1))
    with pytest.raises(LenetError, match=r"different configuration \(train_epsilon: 0.1 there, 0.2 now\)"):
        robustness(changed, out, data=tiny, progress=False, echo=lambda _: None)


def test_robustness_attacks_a_finished_ensemble_run(tiny, wide_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(wide_run[0], run)  # a finished run: 2 wide LeNet-5 members, one epoch (conftest.py)
    metrics = wide_run[1].metrics
    out = tmp_path / "rob"
    attack = RobustnessSpec(run=str(run), adversarial_training=False, epsilons=(0.0, 0.2), examples=2)
    result = robustness(attack, out, data=tiny, progress=False, echo=lambda _: None)
    assert result["attacked"]["set"].startswith("validation part")
    (item,) = result["variants"]["normal"]
    # the loaded ensemble is the run's averaged model: its clean accuracy is the run's own figure
    assert item["clean_accuracy"] == pytest.approx(metrics["ensemble"]["val_accuracy"])
    assert item["accuracy"]["0"] == item["clean_accuracy"] and "adversarial" not in result["variants"]
    assert result["config"]["run_members"] == 2 and result["config"]["model"]["name"] == "lenet5-wide"

    with pytest.raises(LenetError, match="holds a 'lenet5-wide' run, not --model 'standard'"):
        robustness(RobustnessSpec(model="standard", run=str(run)), tmp_path / "x", data=tiny, echo=lambda _: None)
    other = type(tiny)(tiny.train_images[:500], tiny.train_labels[:500], None, None, source="other digits")
    with pytest.raises(LenetError, match="was trained on other data"):
        robustness(RobustnessSpec(run=str(run)), tmp_path / "y", data=other, echo=lambda _: None)


def test_attacked_digits_of_a_final_weights_run_are_described_truly(tiny, tmp_path: Path) -> None:
    # Issue 18 item 10: a final-weights run's validation digits were "used for early stopping only".
    run = tmp_path / "run"
    train = TrainConfig(epochs=1, restore_best=False)
    run_training(JobSpec(model="mlp", train=train), run, data=tiny, progress=False, echo=lambda _: None)
    attack = RobustnessSpec(run=str(run), adversarial_training=False, epsilons=(0.0, 0.2), examples=2)
    result = robustness(attack, tmp_path / "rob", data=tiny, progress=False, echo=lambda _: None)
    described = "validation part (not trained on; monitored during the run's training, which kept its last epoch's"
    assert result["attacked"]["set"].startswith(described)
    markdown = (tmp_path / "rob" / "robustness.md").read_text()
    assert "early stopping only" not in markdown and "Adversarial training" not in markdown
    assert "The normal model is the loaded run's." in markdown


def test_a_refit_run_is_attacked_with_the_members_that_never_saw_the_digits(tiny, tmp_path: Path) -> None:
    """A deployment run has no test part: its validation digits are attacked, which its refit members
    were trained on. The attack must use the members trained on the training part only, and a study
    must not resume against a run retrained since (the run's configuration is part of its own)."""
    run = tmp_path / "run"
    quiet = {"data": tiny, "progress": False, "echo": lambda _: None}
    run_training(JobSpec(model="mlp", train=TrainConfig(epochs=1), refit=True), run, **quiet)
    attack = RobustnessSpec(run=str(run), adversarial_training=False, epsilons=(0.0,), examples=2)
    result = robustness(attack, tmp_path / "rob", **quiet)
    members = Ensemble.load(run / "members")
    x_val = split_data(tiny, "deployment", seed=0).x_val  # predict_proba prepares the pixels
    y_val = split_data(tiny, "deployment", seed=0).y_val
    clean = result["variants"]["normal"][0]["clean_accuracy"]
    assert clean == pytest.approx(accuracy(members.predict_proba(x_val), y_val))
    run_training(JobSpec(model="mlp", train=TrainConfig(epochs=2)), run, force=True, **quiet)
    with pytest.raises(LenetError, match="different configuration"):
        robustness(attack, tmp_path / "rob", **quiet)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (RobustnessSpec(), r"robustness needs model \(a model to train\) or run"),
        (RobustnessSpec(model="mlp", epsilons=(0.1, 1.5)), r"^epsilons: 1.5 is not a number in \[0, 1\]"),
        (RobustnessSpec(model="mlp", epsilons=()), "^epsilons: give at least one value"),
        (RobustnessSpec(model="mlp", train_epsilon=0.0), r"^train_epsilon must be a number in \(0, 1\]"),
        (RobustnessSpec(model="mlp", repeats=0), "^repeats must be an integer ≥ 1"),
        (RobustnessSpec(run="r", hparams_path="h.json"), "^hparams_path does not apply with run"),
    ],
)
def test_bad_robustness_settings(spec: RobustnessSpec, message: str) -> None:
    with pytest.raises(LenetError, match=message):
        spec.validate()


def test_fgsm_rejects_images_outside_the_pixel_range() -> None:
    with pytest.raises(LenetError, match=r"pixels in \[0, 255\]"):
        fgsm(_linear_softmax(), np.full((1, 3), 256.0), np.array([0]), 0.1)
    with pytest.raises(LenetError, match="2 images but 1 labels"):
        fgsm(_linear_softmax(), np.zeros((2, 3)), np.array([0]), 0.1)


def test_robustness_command_line(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["robustness", "--model", "mlp", "--data", str(kaggle_dir), "--out", str(out), "--repeats", "1",
            "--epochs", "1", "--epsilons", "0,0.2", "--no-adversarial-training", "--examples", "2",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert set(json.loads((out / "robustness.json").read_text())["summary"]) == {"normal"}
    # Issue 18 item 10: the report described adversarial training that did not run.
    assert "Adversarial training" not in (out / "robustness.md").read_text()
    capsys.readouterr()
    assert main(["robustness", "--data", str(kaggle_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lenet-tf: error: robustness needs --model (a model to train) or --run (a finished run to attack)"]
    assert main(["robustness", "--run", str(tmp_path / "nowhere"), "--data", str(kaggle_dir)]) == 2
    assert "nowhere: no config.json" in capsys.readouterr().err
