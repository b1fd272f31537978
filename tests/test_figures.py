from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from lenet_tf.data import prepare
from lenet_tf.errors import LenetError
from lenet_tf.figures import (
    feature_maps,
    first_conv_layer,
    load_member_histories,
    misclassified_indices,
    plot_digit_grid,
    plot_first_layer,
    plot_misclassified,
    plot_test_predictions,
    plot_training_history,
)
from lenet_tf.models import classic_lenet5, optimized_lenet, standard_lenet
from lenet_tf.training import set_seed

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG, path
    assert not list(path.parent.glob(".*partial*")), "a temporary file was left behind"


def _history(epochs: int, shift: float = 0.0) -> dict[str, list[float]]:
    ramp = np.linspace(0.5, 0.9, epochs) + shift
    return {"accuracy": ramp.tolist(), "val_accuracy": (ramp - 0.02).tolist(),
            "loss": (1 - ramp).tolist(), "val_loss": (1.05 - ramp).tolist()}  # fmt: skip


def test_misclassified_order_and_gallery(tiny, tmp_path: Path) -> None:
    labels = tiny.train_labels[:40]
    probabilities = np.full((40, 10), 0.01)
    probabilities[np.arange(40), labels] = 0.91  # right by default
    wrong = {3: 0.5, 7: 0.95, 12: 0.7, 30: 0.7}  # index -> confidence of the wrong digit
    for index, confidence in wrong.items():
        probabilities[index] = (1 - confidence) / 9
        probabilities[index, (labels[index] + 1) % 10] = confidence
    assert misclassified_indices(labels, probabilities).tolist() == [7, 12, 30, 3]  # confident first, ties by index
    path = plot_misclassified(tiny.train_images[:40], labels, probabilities, tmp_path / "wrong.png", title="test")
    assert_png(path)
    right = np.eye(10)[labels]
    assert_png(plot_misclassified(tiny.train_images[:40], labels, right, tmp_path / "none.png"))
    with pytest.raises(LenetError, match=r"expected probabilities of shape \(40, 10\), got \(39, 10\)"):
        plot_misclassified(tiny.train_images[:40], labels, probabilities[:39], tmp_path / "bad.png")
    with pytest.raises(LenetError, match="limit must be an integer ≥ 1"):
        plot_misclassified(tiny.train_images[:40], labels, probabilities, tmp_path / "bad.png", limit=0)


def test_digit_grid_and_test_predictions(tiny, tmp_path: Path) -> None:
    images = tiny.test_images[:12]
    assert_png(plot_digit_grid(images, [str(i) for i in range(12)], tmp_path / "grid.png", title="t", columns=5))
    proba = np.eye(10)[np.arange(12) % 10]
    assert_png(plot_test_predictions(images, proba, tmp_path / "pred.png", title="t", labels=tiny.test_labels[:12]))
    with pytest.raises(LenetError, match="11 captions for 12 images"):
        plot_digit_grid(images, ["x"] * 11, tmp_path / "bad.png", title="t")
    with pytest.raises(LenetError, match=r"expected images of shape \(N, 28, 28\)"):
        plot_digit_grid(images.reshape(12, -1), ["x"] * 12, tmp_path / "bad.png", title="t")


@pytest.mark.parametrize(("builder", "name", "filters"), [(standard_lenet, "conv_1", 6), (classic_lenet5, "c1", 6),
                                                          (optimized_lenet, "conv_1", 13)])  # fmt: skip
def test_first_convolution_is_found_for_every_builder(builder, name, filters, tiny, tmp_path: Path) -> None:
    set_seed(0)
    model = builder()
    conv = first_conv_layer(model)
    assert conv.name == name
    maps = feature_maps(model, tiny.train_images[0])
    assert maps.shape == (28, 28, filters)  # LeNet-5 pads to 32 and convolves 'valid': 28 again
    assert_png(plot_first_layer(model, tiny.train_images[0], tmp_path / f"{name}.png"))


def test_feature_maps_match_a_hand_computed_convolution(tiny) -> None:
    set_seed(1)
    model = standard_lenet()  # same padding, 5×5, tanh
    kernel, bias = model.get_layer("conv_1").get_weights()
    x = np.pad(prepare(tiny.train_images[:1])[0, :, :, 0], 2)
    windows = np.lib.stride_tricks.sliding_window_view(x, (5, 5))  # (28, 28, 5, 5)
    expected = np.tanh(np.einsum("ijuv,uvf->ijf", windows, kernel[:, :, 0, :]) + bias)
    np.testing.assert_allclose(feature_maps(model, tiny.train_images[0]), expected, atol=1e-5)


def test_model_without_convolution_is_refused() -> None:
    dense = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)], name="mlp")
    with pytest.raises(LenetError, match="model 'mlp' has no Conv2D layer"):
        first_conv_layer(dense)


def test_member_histories_and_history_figures(tmp_path: Path) -> None:
    members = tmp_path / "run" / "members"
    members.mkdir(parents=True)
    for index, epochs in enumerate((4, 6, 3)):
        (members / f"member_{index + 1:02d}.json").write_text(json.dumps({"history": _history(epochs), "seed": index}))
    histories = load_member_histories(tmp_path / "run")
    assert [len(h["accuracy"]) for h in histories] == [4, 6, 3]
    assert load_member_histories(members) == histories  # the members/ directory itself works too
    assert_png(plot_training_history(histories, tmp_path / "all.png", title="ensemble"))
    assert_png(plot_training_history(histories[0], tmp_path / "one.png", title="one model"))
    assert_png(plot_training_history(histories[:2], tmp_path / "named.png", title="two", names=["a", "b"]))
    with pytest.raises(LenetError, match="1 names for 2 histories"):
        plot_training_history(histories[:2], tmp_path / "bad.png", title="two", names=["a"])

    (members / "member_02.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(LenetError, match=r"member_02\.json: no 'history' object"):
        load_member_histories(tmp_path / "run")
    broken = _history(3)
    del broken["val_loss"]
    (members / "member_02.json").write_text(json.dumps({"history": broken}))
    with pytest.raises(LenetError, match=r"member_02\.json: the history has no 'val_loss'"):
        load_member_histories(tmp_path / "run")
    with pytest.raises(LenetError, match="no member metrics"):
        load_member_histories(tmp_path)


def test_convergence_shows_the_error_rate_on_a_log_axis_in_whole_epochs(tmp_path: Path, monkeypatch) -> None:
    """At 99 % accuracy the last epochs are invisible on a 0.2-1.0 accuracy axis: the error rate is
    drawn on a log axis beside it, epochs are whole numbers, and the title spans both panels."""
    import lenet_tf.plots as plots

    shown = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: shown.setdefault("fig", fig))
    history = {"accuracy": [0.9, 0.99, 0.999, 1.0], "val_accuracy": [0.95, 0.985, 0.99, 0.991]}
    plots.plot_convergence([history, history], tmp_path / "c.png", title="a long model title")
    accuracy_axis, error_axis = shown["fig"].axes
    assert error_axis.get_yscale() == "log" and accuracy_axis.get_yscale() == "linear"
    assert shown["fig"]._suptitle.get_text() == "a long model title (2 members overlaid)"
    ticks = [t for t in error_axis.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert min(error_axis.lines[0].get_ydata()) > 0  # a perfect epoch stays on the log axis
