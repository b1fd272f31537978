from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path

import keras
import matplotlib.colors
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

from lenet_tf import figures, plots
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
    path = tmp_path / "wrong.png"
    assert isinstance(plot_misclassified(tiny.train_images[:40], labels, probabilities, path, title="test"), Figure)
    assert_png(path)
    right = np.eye(10)[labels]
    plot_misclassified(tiny.train_images[:40], labels, right, tmp_path / "none.png")
    assert_png(tmp_path / "none.png")
    with pytest.raises(LenetError, match=r"expected probabilities of shape \(40, 10\), got \(39, 10\)"):
        plot_misclassified(tiny.train_images[:40], labels, probabilities[:39], tmp_path / "bad.png")
    with pytest.raises(LenetError, match="limit must be an integer ≥ 1"):
        plot_misclassified(tiny.train_images[:40], labels, probabilities, tmp_path / "bad.png", limit=0)


def test_digit_grid_and_test_predictions(tiny, tmp_path: Path) -> None:
    images = tiny.test_images[:12]
    plot_digit_grid(images, [str(i) for i in range(12)], tmp_path / "grid.png", title="t", columns=5)
    assert_png(tmp_path / "grid.png")
    proba = np.eye(10)[np.arange(12) % 10]
    plot_test_predictions(images, proba, tmp_path / "pred.png", title="t", labels=tiny.test_labels[:12])
    assert_png(tmp_path / "pred.png")
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
    plot_first_layer(model, tiny.train_images[0], tmp_path / f"{name}.png")
    assert_png(tmp_path / f"{name}.png")


def test_feature_maps_match_a_hand_computed_convolution(tiny) -> None:
    set_seed(1)
    model = standard_lenet()  # same padding, 5×5, tanh
    kernel, bias = model.get_layer("conv_1").get_weights()
    x = np.pad(prepare(tiny.train_images[:1])[0, :, :, 0], 2)
    windows = np.lib.stride_tricks.sliding_window_view(x, (5, 5))  # (28, 28, 5, 5)
    expected = np.tanh(np.einsum("ijuv,uvf->ijf", windows, kernel[:, :, 0, :]) + bias)
    # Pixels are 0-255 now: float32 sums of 25 products that large round at ~1e-5 of their size.
    np.testing.assert_allclose(feature_maps(model, tiny.train_images[0]), expected, rtol=1e-4, atol=1e-5)


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
    plot_training_history(histories, tmp_path / "all.png", title="ensemble")
    plot_training_history(histories[0], tmp_path / "one.png", title="one model")
    plot_training_history(histories[:2], tmp_path / "named.png", title="two", names=["a", "b"])
    for name in ("all", "one", "named"):
        assert_png(tmp_path / f"{name}.png")
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

    history = {"accuracy": [0.9, 0.99, 0.999, 1.0], "val_accuracy": [0.95, 0.985, 0.99, 0.991]}
    shown = {"fig": plots.plot_convergence([history, history], None, title="a long model title", run="run")}
    accuracy_axis, error_axis = shown["fig"].axes
    assert error_axis.get_yscale() == "log" and accuracy_axis.get_yscale() == "linear"
    assert shown["fig"]._suptitle.get_text() == "run: a long model title\n2 members overlaid"
    ticks = [t for t in error_axis.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert min(error_axis.lines[0].get_ydata()) > 0  # a perfect epoch stays on the log axis


# ----------------------------------------------------------------------------- figures people look at
# Every figure kind is rendered at one epoch / one repeat and at many, then checked the way a reader
# would: every text inside the figure, no legend over a plotted point, a single point still drawn,
# counts in the singular at one. The figures are caught when save_figure closes them, after their layout.

MANY = 12
RIGHT_AT_ONE = re.compile(r"\b1 (repeat|member|trial|epoch|configuration|image)s\b|\(s\)")


@pytest.fixture
def rendered(monkeypatch) -> list:
    """The figures the plot functions save, kept open for inspection (closed afterwards)."""
    caught: list = []
    close = plots.plt.close
    monkeypatch.setattr(plots.plt, "close", caught.append)
    yield caught
    for fig in caught:
        close(fig)


def _drawn_ticks(axis) -> list[tuple[float, Text]]:
    """(location, label) of the ticks a draw shows: those within the view limits of an axis that is
    on (matplotlib keeps the labels of off-view ticks around, undrawn)."""
    if not (axis.axes.axison and axis.get_visible()):
        return []
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * (high - low)
    shown = []
    for locs, get_ticks in ((axis.get_majorticklocs(), axis.get_major_ticks),
                            (axis.get_minorticklocs(), axis.get_minor_ticks)):  # fmt: skip
        shown += [(loc, label) for tick, loc in zip(get_ticks(len(locs)), locs, strict=True)
                  if low - slack <= loc <= high + slack for label in (tick.label1, tick.label2)
                  if label.get_visible() and label.get_text().strip()]  # fmt: skip
    return shown


def _drawn_texts(fig) -> list[Text]:
    """The non-empty texts a draw shows, tick labels only of the ticks drawn."""
    axes = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)]
    ticks = {id(label) for axis in axes for tick in axis.majorTicks + axis.minorTicks
             for label in (tick.label1, tick.label2)}  # fmt: skip
    shown = [label for axis in axes for _, label in _drawn_ticks(axis)]
    others = [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible() and t.get_text().strip()]
    return shown + others


def _clipped(fig) -> list[str]:
    fig.canvas.draw()  # at the figure's dpi: savefig's 120 dpi left the legends' texts placed for it
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    boxes = [(repr(t.get_text()), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    boxes += [("a legend", legend.get_window_extent(renderer)) for legend in _legends(fig)]
    return [f"{name} at {box.bounds}" for name, box in boxes
            if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1]  # fmt: skip


def _legends(fig) -> list:
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def _points(ax) -> np.ndarray:
    """Display coordinates of the plotted data within the axes: line vertices and 20 points along
    each drawn segment, scatter points, error bar ends."""
    chunks = [np.empty((0, 2))]
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if len(xy) > 1 and line.get_linestyle() not in ("None", "", " "):
            xy = np.concatenate([a + t * (b - a) for a, b in zip(xy[:-1], xy[1:], strict=True)
                                 for t in np.linspace(0, 1, 20)]).reshape(-1, 2)  # fmt: skip
        chunks.append(xy)
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and len(collection.get_offsets()):
            chunks.append(collection.get_offset_transform().transform(collection.get_offsets()))
        if isinstance(collection, LineCollection) and collection.get_segments():
            chunks.append(collection.get_transform().transform(np.concatenate(collection.get_segments())))
    points = np.concatenate(chunks)
    points = points[np.isfinite(points).all(axis=1)]
    return np.array([p for p in points if ax.bbox.contains(*p)]).reshape(-1, 2)


def _covered(fig) -> list[str]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for legend in _legends(fig):
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            under = [p for p in _points(ax) if box.contains(*p)]
            if under:
                found.append(f"the legend {[t.get_text() for t in legend.get_texts()]} covers {len(under)} points "
                             f"of {ax.get_title()!r}")  # fmt: skip
    return found


def _invisible(fig) -> list[str]:
    """Lines that draw nothing: a single point (or a marker-less series) without a marker."""
    found = []
    for ax in fig.axes:
        for line in ax.lines:
            xy = np.asarray(line.get_xydata(), dtype=float)
            points = int(np.isfinite(xy).all(axis=1).sum())
            no_marker = line.get_marker() in (None, "None", "", " ")
            no_line = line.get_linestyle() in ("None", "", " ") or points < 2
            if points and no_marker and no_line:
                found.append(f"{line.get_label()!r} in {ax.get_title()!r}: {points} point(s), no marker")
    return found


def assert_readable(fig) -> None:
    assert not _clipped(fig), _clipped(fig)
    assert not _covered(fig), _covered(fig)
    assert not _invisible(fig), _invisible(fig)
    wrong = [t.get_text() for t in _drawn_texts(fig) if RIGHT_AT_ONE.search(t.get_text())]
    assert not wrong, wrong


def _converging(epochs: int, final: float, seed: int = 0) -> dict[str, list[float]]:
    """A history like the evaluations': about 0.3 after the first epoch, ``final`` at the last."""
    rng = np.random.default_rng(seed)
    e = np.arange(epochs)
    train = final + 0.004 - (final - 0.3) * np.exp(-e / 1.5) + rng.normal(0, 0.002, epochs)
    val = final - (final - 0.35) * np.exp(-e / 1.5) + rng.normal(0, 0.003, epochs)
    train, val = np.clip(train, 0, 1), np.clip(val, 0, 1)
    return {"accuracy": train.tolist(), "val_accuracy": val.tolist(), "loss": (1 - train).tolist(),
            "val_loss": (1.1 - val).tolist()}  # fmt: skip


def _summary(values: list[float]) -> dict:
    return {"n": len(values), "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1
            else 0.0}  # fmt: skip


def _test_set(weak: bool = False, seed: int = 0, per_digit: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities of a model that is right about 97 % (or, weak, 60 %) of the time."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_digit)
    logits = rng.normal(0, 1, (len(labels), 10))
    logits[np.arange(len(labels)), labels] += 1.2 if weak else 4.5
    proba = np.exp(logits)
    return labels, proba / proba.sum(axis=1, keepdims=True)


def _confusion(n: int) -> dict:
    matrices = []
    for seed in range(n):
        labels, proba = _test_set(seed=seed)
        counts = np.zeros((10, 10))
        np.add.at(counts, (labels, proba.argmax(axis=1)), 1)
        matrices.append(counts / counts.sum(axis=1, keepdims=True))
    std = np.std(matrices, axis=0, ddof=1) if n > 1 else np.zeros((10, 10))
    return {"n": n, "mean": np.mean(matrices, axis=0).tolist(), "std": std.tolist()}


def _roc(n: int, path: Path | None, weak: bool = False) -> Figure:
    runs = [_test_set(weak=weak, seed=seed) for seed in range(n)]
    labels = runs[0][0]
    auc = {"n": n, "mean": [0.999 - (0.3 if weak else 0.0)] * 10, "std": [0.001] * 10}
    title = "optimized LeNet, ensemble of 5"
    return plots.plot_roc_curves(labels, [proba for _, proba in runs], auc, path, title=title)


def _repeats(n: int) -> list[dict]:
    rng = np.random.default_rng(n)
    return [{f"{name}_accuracy": float(0.97 + rng.normal(0, 0.004)) for name in ("train", "val", "test")}
            for _ in range(n)]  # fmt: skip


def _study(n: int) -> tuple[list[str], list[dict]]:
    """The activation study (sigmoid far behind) with ``n`` repeats of each configuration."""
    labels = ["sigmoid", "tanh", "relu", "gelu", "elu"]
    means = [0.11, 0.97, 0.975, 0.972, 0.968]
    summaries = [{f"{name}_accuracy": _summary([m + 0.002 * (r % 3) for r in range(n)]) for name in ("val", "test")}
                 for m in means]  # fmt: skip
    return labels, summaries


def _gradients(epochs: int, configurations: int = 5) -> dict:
    """Per-layer gradients a factor 3 apart, wavering over the epochs, as in the studies: the five
    curves cross every panel at every height, leaving no gap a legend of five entries fits in."""
    layers = ("conv_1", "conv_2", "dense_1", "dense_2", "probabilities")
    waver = 1 + 0.3 * np.sin(np.arange(epochs + 1))
    series = {layer: (0.1 / 3**i * waver).tolist() for i, layer in enumerate(layers)}
    return {f"config_{c}": series for c in range(configurations)}


def _first_layer(n: int, path: Path | None) -> Figure:
    set_seed(0)
    model = standard_lenet() if n == 1 else optimized_lenet()
    images = np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8)
    return plot_first_layer(model, images[0], path)


def _digits(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _misclassified(n: int, path: Path | None) -> Figure:
    labels, proba = _test_set(per_digit=5)
    wrong = np.arange(n)
    proba[wrong] = np.roll(np.eye(10)[labels[wrong]], 1, axis=1) * 0.9 + 0.01  # n confident mistakes
    proba[n:] = np.eye(10)[labels[n:]]
    return plot_misclassified(_digits(len(labels)), labels, proba, path, title="validation images")


def _intermediate(n: int) -> list:
    return [(str(t), list(range(1, n + 1)), _converging(n, 0.97, seed=t)["val_accuracy"]) for t in range(max(n, 1))]


def _baselines(n: int, path: Path | None) -> Figure:
    rows, columns = [0.1 * 10**i for i in range(min(n, 4))], ["scale", 0.01][: min(n, 2)]
    grid = {"row_name": "C", "rows": rows, "column_name": "gamma", "columns": columns,
            "values": [[0.9 + 0.01 * i] * len(columns) for i in range(len(rows))]}  # fmt: skip
    grids = [{**grid, "name": name} for name in ("SVM (RBF)", "k-nearest neighbours")]
    timings = [(family, 10.0 * (i + 1), 0.9 + 0.005 * i) for family in ("SVM", "kNN") for i in range(n)]
    return plots.plot_baseline_grids(grids, timings, path, title="Classical baselines", measure="validation accuracy")


def _pca(n: int, path: Path | None) -> Figure:
    """``n`` digits present (at most 9: never a 7, which the legend must then not list)."""
    digits = [d for d in range(10) if d != 7][: min(n, 9)]
    labels = np.repeat(digits, 3000 // len(digits))  # exploration plots 5,000 by default
    coords = np.random.default_rng(n).uniform(-4, 4, (len(labels), 2))  # overlapping clusters filling the axes
    coords += np.stack([np.cos(labels), np.sin(labels)], axis=1)
    return plots.plot_pca_scatter(coords, labels, [0.097, 0.071], 42000, path)


def _convergence(n: int, path: Path | None) -> Figure:
    histories = [_converging(n, 0.97, seed) for seed in range(2)]
    title = "LeNet-5 with batch normalisation (32/64 filters, dropout)"
    return plots.plot_convergence(histories, path, title, repeats=2)


def _learning_curve(n: int, path: Path | None) -> Figure:
    sizes = [252 * (i + 1) for i in range(min(n, 10))]
    curve = {"sizes": sizes, "repeats": n, "train_mean": [0.96] * len(sizes), "test_mean": [0.92] * len(sizes),
             "train_std": [0.01] * len(sizes), "test_std": [0.01] * len(sizes)}  # fmt: skip
    return plots.plot_learning_curve(curve, path, title="standard LeNet")


def _hparam_importance(n: int, path: Path | None) -> Figure:
    names = [f"hyperparameter_{i}" for i in range(n)]
    means = [0.1 * i for i in range(n)]
    return plots.plot_hparam_importance(names, means, [0.01] * n, path, "search", note="too few trials")


def _epsilon(n: int, path: Path | None) -> Figure:
    curves = {name: ([0.98 * np.exp(-5 * k * i / n) for i in range(n)], [0.01] * n)
              for k, name in enumerate(("standard", "adversarially trained"))}  # fmt: skip
    return plots.plot_accuracy_vs_epsilon([0.05 * i for i in range(n)], curves, path, "FGSM, optimized LeNet")


def _learning_rates(n: int, path: Path | None) -> Figure:
    rows = [
        (opt, 10.0**-k, 0.9 + 0.01 * k, 0.01) for opt in ("sgd", "momentum", "adam") for k in range(1, min(n, 4) + 1)
    ]
    return plots.plot_learning_rate_grid(rows, path, "optimizer study, standard LeNet")


OPTIMIZER_STUDY = ("sgd_lr0.0001", "sgd_lr0.001", "sgd_lr0.01", "sgd_lr0.1", "momentum_lr0.0001", "momentum_lr0.001",
                   "momentum_lr0.01", "adam_lr0.001", "step_decay_lr0.1")  # fmt: skip


def _study_convergence(n: int, path: Path | None) -> Figure:
    histories = {label: [_converging(n, 0.95 + 0.005 * c, seed) for seed in range(2)]
                 for c, label in enumerate(OPTIMIZER_STUDY)}  # fmt: skip
    return plots.plot_configuration_convergence(histories, path, title="optimizer study, standard LeNet")


def _test_predictions(n: int, path: Path | None) -> Figure:
    title = f"First {n} test digits with the predictions of 5 members of reports/flagship-deployment"
    return plot_test_predictions(_digits(n), np.eye(10)[np.arange(n) % 10], path, labels=np.arange(n) % 10, title=title)


FIGURE_KINDS: dict[str, Callable[[int, Path | None], Figure]] = {
    "plot_convergence": _convergence,
    "plot_roc_curves": _roc,
    "plot_confusion": lambda n, p: plots.plot_confusion(_confusion(n), p, title="optimized LeNet, ensemble of 5"),
    "plot_repeat_accuracy": lambda n, p: plots.plot_repeat_accuracy(_repeats(n), p, title="optimized LeNet"),
    "plot_learning_curve": _learning_curve,
    "plot_optimization_history": lambda n, p: plots.plot_optimization_history(
        [None if t % 5 == 4 else 0.95 + 0.002 * t for t in range(n)], p, "optimized LeNet search"
    ),
    "plot_intermediate_values": lambda n, p: plots.plot_intermediate_values(_intermediate(n), p, "search", best="0"),
    "plot_hparam_importance": _hparam_importance,
    "plot_accuracy_vs_epsilon": _epsilon,
    "plot_configuration_accuracy": lambda n, p: plots.plot_configuration_accuracy(
        *_study(n), p, title="activation study, standard LeNet"
    ),
    "plot_learning_rate_grid": _learning_rates,
    "plot_configuration_convergence": _study_convergence,
    "plot_gradient_magnitudes": lambda n, p: plots.plot_gradient_magnitudes(
        _gradients(n), p, title="activation study, standard LeNet (repeat mean)"
    ),
    "plot_baseline_grids": _baselines,
    "plot_pca_scatter": _pca,
    "plot_digit_grid": lambda n, p: plot_digit_grid(
        _digits(n), [f"label {i % 10}" for i in range(n)], p, title=f"{n} random training digits of 42,000"
    ),
    "plot_misclassified": _misclassified,
    "plot_test_predictions": _test_predictions,
    "plot_first_layer": _first_layer,
    "plot_training_history": lambda n, p: plot_training_history(
        [_converging(n, 0.98, seed) for seed in range(3)], p, title="LeNet-5 with batch normalisation"
    ),
}


def test_every_figure_kind_is_covered() -> None:
    kinds = {name for module in (plots, figures) for name, function in inspect.getmembers(module, inspect.isfunction)
             if name.startswith("plot_") and function.__module__ == module.__name__}  # fmt: skip
    assert kinds == set(FIGURE_KINDS)


@pytest.mark.parametrize("kind", sorted(FIGURE_KINDS))
def test_every_plot_returns_its_figure_and_writes_only_when_given_a_path(kind: str, tmp_path: Path) -> None:
    """Issue 29, item 7: a notebook shows the returned Figure (no file needed); with a path the PNG is
    written and the figure closed in pyplot, so that a loop of runs leaks no open figures."""
    before = set(plots.plt.get_fignums())
    unsaved = FIGURE_KINDS[kind](3, None)
    assert isinstance(unsaved, Figure) and unsaved.number in plots.plt.get_fignums()
    assert not any(tmp_path.iterdir())
    plots.plt.close(unsaved)
    saved = FIGURE_KINDS[kind](3, tmp_path / "f.png")
    assert isinstance(saved, Figure) and set(plots.plt.get_fignums()) == before
    assert_png(tmp_path / "f.png")


@pytest.mark.parametrize("n", [1, MANY])
@pytest.mark.parametrize("kind", sorted(FIGURE_KINDS))
def test_figures_are_readable_at_one_and_at_many(kind: str, n: int, rendered, tmp_path: Path) -> None:
    """Issue 28: nothing clipped, no legend over data, single points drawn, '1 repeat' not '1 repeats'."""
    path = tmp_path / "run" / f"{kind}.png"
    FIGURE_KINDS[kind](n, path)
    assert_png(path)
    assert rendered, "the figure was not saved through save_figure"
    for fig in rendered:
        assert_readable(fig)


# ----------------------------------------------------------------------------- issue 28, item by item


def test_one_epoch_convergence_draws_points_on_whole_epoch_ticks(rendered, tmp_path: Path) -> None:
    """Item 17: a 1-epoch run drew empty axes (a line through one point, no marker), ticked the
    epochs 0.945 … 1.050 and labelled its log axis 8.6×10⁻¹."""
    history = {"accuracy": [0.86], "val_accuracy": [0.93]}
    plots.plot_convergence([history], tmp_path / "run" / "convergence.png", "optimized LeNet")
    (fig,) = rendered
    assert not _invisible(fig)
    for ax in fig.axes:
        assert [loc for loc, _ in _drawn_ticks(ax.xaxis)] == [1.0]
    error_labels = [label.get_text() for _, label in _drawn_ticks(fig.axes[1].yaxis)]
    assert len(error_labels) >= 2 and all(re.fullmatch(r"[0-9.]+", text) for text in error_labels), error_labels


def test_counts_read_right_at_one(rendered, tmp_path: Path) -> None:
    """Item 17: titles said '1 repeats' and '1 repeat(s) each'."""
    _roc(1, tmp_path / "roc.png")
    plots.plot_confusion(_confusion(1), tmp_path / "confusion.png", title="optimized LeNet")
    plots.plot_configuration_accuracy(*_study(1), tmp_path / "accuracy.png", title="activation study")
    _learning_curve(1, tmp_path / "curve.png")
    plots.plot_intermediate_values(_intermediate(1), tmp_path / "trials.png", "search", best="0")
    plots.plot_optimization_history([0.9], tmp_path / "history.png", "search")
    texts = [text.get_text() for fig in rendered for text in _drawn_texts(fig)]
    assert not [text for text in texts if RIGHT_AT_ONE.search(text)]
    assert sum(bool(re.search(r"\b1 (repeat|trial)\b", text)) for text in texts) == 6


def _elu_study(path: Path) -> None:
    """The activation study as run: elu well behind the others, its two points at the lower right."""
    labels = ["sigmoid", "tanh", "relu", "gelu", "elu"]
    means = [0.975, 0.978, 0.981, 0.980, 0.925]
    summaries = [{f"{name}_accuracy": _summary([m - 0.002, m + 0.002]) for name in ("val", "test")} for m in means]
    plots.plot_configuration_accuracy(labels, summaries, path, title="activation study, standard LeNet")


LEGEND_CASES = {
    "study accuracy": _elu_study,
    "ROC of weak models": lambda path: _roc(3, path, weak=True),
    "PCA": lambda path: _pca(MANY, path),
    "gradients": lambda path: plots.plot_gradient_magnitudes(_gradients(20, 6), path, title="activation study"),
}


@pytest.mark.parametrize("case", sorted(LEGEND_CASES))
def test_legends_leave_the_data_in_sight(case: str, rendered, tmp_path: Path) -> None:
    """Item 18: legends covered both elu points, the weak models' ROC curves, the PCA clusters and
    the gradient curves."""
    LEGEND_CASES[case](tmp_path / "figure.png")
    (fig,) = rendered
    assert not _covered(fig), _covered(fig)


def test_pca_legend_lists_only_the_digits_present(rendered, tmp_path: Path) -> None:
    """Item 18: the PCA legend listed digits absent from the sample (here: 7)."""
    _pca(MANY, tmp_path / "pca.png")
    (legend,) = _legends(rendered[0])
    assert [text.get_text() for text in legend.get_texts()] == ["0", "1", "2", "3", "4", "5", "6", "8", "9"]


def test_study_convergence_title_is_not_clipped(rendered, tmp_path: Path) -> None:
    """Item 18: the study's convergence title ran past the figure's right edge."""
    runs = {label: [_converging(10, 0.97, seed)] for seed, label in enumerate(("random_normal", "he_normal"))}
    title = "initialization study, standard LeNet"  # the longest heading of the five studies
    plots.plot_configuration_convergence(runs, tmp_path / "convergence.png", title=title)
    assert not _clipped(rendered[0]), _clipped(rendered[0])


def test_repeat_accuracy_points_do_not_hide_one_another(rendered, tmp_path: Path) -> None:
    """Item 18: train, validation and test points of a repeat were drawn on one spot."""
    repeats = [{"train_accuracy": 0.97, "val_accuracy": 0.97, "test_accuracy": 0.97}] * 3
    plots.plot_repeat_accuracy(repeats, tmp_path / "repeats.png", title="optimized LeNet")
    (fig,) = rendered
    ax = fig.axes[0]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    centres = np.concatenate([line.get_transform().transform(line.get_xydata())[:1] for line in points])
    diameter = max(line.get_markersize() for line in points) * fig.dpi / 72
    gaps = [np.hypot(*(a - b)) for i, a in enumerate(centres) for b in centres[i + 1 :]]
    assert len(points) == 3 and min(gaps) >= diameter


def test_convergence_of_a_97_percent_model_shows_its_last_epochs(rendered, tmp_path: Path) -> None:
    """Item 19: 0.3 at the first epoch and 0.95-0.98 at the last: the curves' ends were within 4 %
    of a 0.3-1.0 accuracy axis. They now span a good part of it, and the error panel is a log axis."""
    histories = [_converging(40, final, seed) for seed, final in enumerate(np.linspace(0.95, 0.98, 10))]
    plots.plot_convergence(histories, tmp_path / "run" / "convergence.png", "optimized LeNet", repeats=10)
    accuracy, error = rendered[0].axes
    low, high = accuracy.get_ylim()
    ends = [h[key][-1] for h in histories for key in ("accuracy", "val_accuracy")]
    assert (max(ends) - min(ends)) / (high - low) >= 0.15  # 0.03 of 0.7 before: 4 %
    assert low <= min(ends) and max(ends) <= high
    assert error.get_yscale() == "log"
    low, high = error.get_ylim()
    assert all(low <= 100 * (1 - value) <= high for h in histories for value in h["val_accuracy"])


def _luminance(rgba) -> float:
    red, green, blue = rgba[:3]
    return 0.299 * red + 0.587 * green + 0.114 * blue


def test_confusion_colours_agree_with_the_cells(rendered, tmp_path: Path) -> None:
    """Item 19: the colour bar was a 0-1 share next to cells in %, and every error cell was white."""
    mean = np.full((10, 10), 0.0)
    np.fill_diagonal(mean, 0.97)
    mean[3, 5], mean[4, 9] = 0.01, 0.02  # 1 % and 2 % errors; the other error cells are zero
    plots.plot_confusion({"n": 3, "mean": mean.tolist(), "std": np.zeros((10, 10)).tolist()}, tmp_path / "c.png", "t")
    (fig,) = rendered
    ax, bar = fig.axes
    image = ax.get_images()[0]
    assert image.norm.vmax == pytest.approx(100)  # the colour bar counts in % like the cells' text
    assert "%" in bar.get_ylabel()
    colour = image.to_rgba(image.get_array())
    assert abs(_luminance(colour[3, 5]) - _luminance(colour[0, 1])) > 0.1  # a 1 % error is not white
    for text in ax.texts:
        j, i = (round(v) for v in text.get_position())
        assert abs(_luminance(matplotlib.colors.to_rgba(text.get_color())) - _luminance(colour[i, j])) > 0.4
        assert text.get_text().startswith(f"{100 * mean[i, j]:.1f}")


def test_roc_axis_starts_at_the_data_resolution(rendered, tmp_path: Path) -> None:
    """Item 19: the log FPR axis started at 1e-4, below one false positive among the negatives."""
    _roc(2, tmp_path / "roc.png")
    negatives = 9 * 60  # 60 test digits of each class: 540 negatives for every digit
    assert rendered[0].axes[0].get_xlim()[0] == pytest.approx(1 / negatives)


def test_convergence_titles_name_the_run(rendered, tmp_path: Path) -> None:
    """Item 19: the flagship runs' convergence plots had one title, with doubled parentheses."""
    title = "LeNet-5 with batch normalisation (32/64 filters, dropout)"
    for run in ("flagship-holdout", "flagship-deployment"):
        plots.plot_convergence([_converging(5, 0.99, s) for s in range(3)], tmp_path / run / "convergence.png", title)
    titles = [fig._suptitle.get_text() for fig in rendered]
    assert titles[0] != titles[1]
    for run, text in zip(("flagship-holdout", "flagship-deployment"), titles, strict=True):
        assert text.startswith(f"{run}: {title}") and ") (" not in text and "3 members overlaid" in text


def test_importing_the_plots_leaves_the_users_backend_alone() -> None:
    # Issue 29: `import lenet_tf.plots` switched every session to Agg, so a notebook's plt.show() went blank.
    import os
    import subprocess
    import sys

    code = "import matplotlib; import lenet_tf.plots; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "svg", done.stderr[-500:]
