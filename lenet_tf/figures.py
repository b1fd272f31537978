"""Figures for looking at digits and trained models, saved as PNG.

* :func:`plot_digit_grid` — a grid of digits with a caption each (samples, test predictions).
* :func:`plot_misclassified` — the validation images a model gets wrong, most confident first.
* :func:`plot_first_layer` — the first convolution's filters and their feature maps for one digit.
* :func:`plot_training_history` — accuracy and loss per epoch, one model or ensemble members overlaid.

Keras is imported only where a model is needed, so the data figures work without TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import IMAGE_SIDE, N_CLASSES, prepare
from .errors import LenetError
from .plots import Figure, line_marker, plt, save_figure, whole_number_ticks
from .rundir import read_json

HISTORY_KEYS = ("accuracy", "val_accuracy", "loss", "val_loss")


def _check_images(images: np.ndarray, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise LenetError(f"{what}: expected images of shape (N, 28, 28), got {images.shape}")
    return images


def _check_probabilities(probabilities: np.ndarray, n: int, what: str) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (n, N_CLASSES):
        raise LenetError(f"{what}: expected probabilities of shape ({n}, {N_CLASSES}), got {probabilities.shape}")
    return probabilities


def plot_digit_grid(
    images: np.ndarray,
    captions: Sequence[str],
    path: str | Path | None,
    *,
    title: str,
    columns: int = 10,
    caption_colors: Sequence[str] | None = None,
) -> Figure:
    """Digits (uint8, N×28×28) in a grid, each with its caption above it (label, prediction …)."""
    images = _check_images(images, "digit grid")
    if len(captions) != len(images):
        raise LenetError(f"digit grid: {len(captions)} captions for {len(images)} images")
    if len(images) == 0:
        raise LenetError("digit grid: no images to show")
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    # At least 6 inches wide: a gallery of one or two digits still has room for its title.
    fig, axes = plt.subplots(rows, columns, figsize=(max(1.25 * columns, 6.0), 1.45 * rows + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(images):
            ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            color = caption_colors[index] if caption_colors is not None else "black"
            ax.set_title(captions[index], fontsize=8, color=color)
    fig.suptitle(title, fontsize=11, wrap=True)
    return save_figure(fig, path)


def misclassified_indices(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of the images predicted wrong, the most confident mistakes first (ties by index)."""
    labels = np.asarray(labels)
    probabilities = _check_probabilities(probabilities, len(labels), "misclassified")
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != labels)
    return wrong[np.argsort(-probabilities.max(axis=1)[wrong], kind="stable")]


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: str | Path | None,
    *,
    title: str = "validation images",
    limit: int = 30,
    columns: int = 10,
) -> Figure:
    """Gallery of the images whose predicted digit differs from the true one, most confident
    mistakes first, each captioned ``true → predicted (confidence)``."""
    images = _check_images(images, "misclassified gallery")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise LenetError(f"misclassified gallery: limit must be an integer ≥ 1, got {limit!r}")
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise LenetError(
            f"misclassified gallery: {labels.shape[0] if labels.ndim else 0} labels for {len(images)} images"
        )
    probabilities = _check_probabilities(probabilities, len(images), "misclassified gallery")
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = misclassified_indices(labels, probabilities)
    heading = f"Misclassified {title}: {len(wrong)} of {len(labels)} ({100 * len(wrong) / max(len(labels), 1):.1f} %)"
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=12)
        ax.set_title(heading, wrap=True)
        return save_figure(fig, path)
    shown = wrong[:limit]
    captions = [f"true {labels[i]} → {predicted[i]}\n{100 * confidence[i]:.0f} % sure" for i in shown]
    more = f", {len(shown)} most confident shown" if len(shown) < len(wrong) else ""
    return plot_digit_grid(
        images[shown], captions, path, title=f"{heading}{more}\ncaption: true digit → predicted (confidence)",
        columns=columns, caption_colors=["tab:red"] * len(shown),
    )  # fmt: skip


def plot_test_predictions(
    images: np.ndarray,
    probabilities: np.ndarray,
    path: str | Path | None,
    *,
    title: str,
    labels: np.ndarray | None = None,
    first_id: int = 1,
    columns: int = 10,
) -> Figure:
    """Unlabeled test digits with the predicted digit and its probability (``#ImageId: digit (p)``).

    With ``labels`` (a labeled stand-in test set), wrong predictions are captioned in red.
    """
    images = _check_images(images, "test predictions")
    probabilities = _check_probabilities(probabilities, len(images), "test predictions")
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    captions = [f"#{first_id + i}: {predicted[i]} ({100 * confidence[i]:.0f} %)" for i in range(len(images))]
    colors = None
    if labels is not None:
        colors = ["black" if p == t else "tab:red" for p, t in zip(predicted, np.asarray(labels), strict=True)]
    return plot_digit_grid(images, captions, path, title=title, columns=columns, caption_colors=colors)


def first_conv_layer(model: Any) -> Any:
    """The first ``Conv2D`` of a Keras model (``conv_1`` in the study's LeNets, ``c1`` in LeNet-5)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise LenetError(f"model {model.name!r} has no Conv2D layer")


def feature_maps(model: Any, image: np.ndarray) -> np.ndarray:
    """The first convolution's output (after its activation) for one uint8 28×28 digit: (H, W, filters)."""
    import keras

    conv = first_conv_layer(model)
    # A sub-model sharing the trained layers up to the first convolution (padding included).
    if len(model.inputs) != 1:
        raise LenetError(f"model {model.name!r} has {len(model.inputs)} inputs; expected one image input")
    probe = keras.Model(inputs=model.inputs[0], outputs=conv.output)
    image = _check_images(np.asarray(image)[np.newaxis], "feature maps")
    return np.asarray(probe(prepare(image), training=False))[0]


def plot_first_layer(model: Any, image: np.ndarray, path: str | Path | None, *, title: str | None = None) -> Figure:
    """Top row: the digit and the first convolution's filters; bottom row: each filter's feature map."""
    conv = first_conv_layer(model)
    kernel = np.asarray(conv.get_weights()[0])  # (k, k, channels, filters)
    maps = feature_maps(model, image)
    n = kernel.shape[-1]
    fig, axes = plt.subplots(2, n + 1, figsize=(1.35 * (n + 1), 3.6), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].imshow(image, cmap="gray_r", vmin=0, vmax=255)
    axes[0, 0].set_title("input digit", fontsize=8)
    axes[0, 0].set_ylabel("filters", fontsize=9)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.5, 0.5, "feature maps\n(after the\nactivation)", ha="center", va="center", fontsize=8)
    # One symmetric colour scale for all filters, so their weights compare; red positive, blue negative.
    limit = float(np.abs(kernel).max()) or 1.0
    for f in range(n):
        axes[0, f + 1].imshow(kernel[:, :, 0, f], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[0, f + 1].set_title(f"filter {f + 1}", fontsize=8)
        axes[1, f + 1].imshow(maps[:, :, f], cmap="viridis")
    size = f"{kernel.shape[0]}×{kernel.shape[1]}"
    fig.suptitle(
        title or f"{model.name}: first convolution {conv.name!r} ({n} filters, {size}; red > 0 > blue)",
        fontsize=10, wrap=True,
    )  # fmt: skip
    return save_figure(fig, path)


def _check_history(history: Mapping[str, Sequence[float]], source: str) -> None:
    for key in HISTORY_KEYS:
        if key not in history:
            raise LenetError(f"{source}: the history has no {key!r} (it has {', '.join(history) or 'nothing'})")
    lengths = {len(history[key]) for key in HISTORY_KEYS}
    if len(lengths) != 1 or 0 in lengths:
        raise LenetError(f"{source}: the history's series are empty or of different lengths")


def load_member_histories(run: str | Path) -> list[dict[str, list[float]]]:
    """The per-epoch histories of a run's members (``<run>/members/member_XX.json``)."""
    from .ensemble import MEMBERS_DIR  # lazily: ensemble imports TensorFlow

    run = Path(run)
    directory = run / MEMBERS_DIR if (run / MEMBERS_DIR).is_dir() else run
    paths = sorted(directory.glob("member_*.json"))
    if not paths:
        raise LenetError(f"{directory}: no member metrics (member_XX.json) there")
    histories = []
    for path in paths:
        payload = read_json(path)
        history = payload.get("history") if isinstance(payload, dict) else None
        if not isinstance(history, dict):
            raise LenetError(f"{path}: no 'history' object")
        _check_history(history, str(path))
        histories.append(history)
    return histories


def plot_training_history(
    histories: Sequence[Mapping[str, Sequence[float]]] | Mapping[str, Sequence[float]],
    path: str | Path | None,
    *,
    title: str,
    names: Sequence[str] | None = None,
) -> Figure:
    """Accuracy (left) and loss (right) per epoch, train solid and validation dashed.

    One history (a mapping, or a list of one) is drawn in two colours; several (ensemble members,
    or models named by ``names``) are overlaid with one colour each.
    """
    if isinstance(histories, Mapping):
        histories = [histories]
    if not histories:
        raise LenetError("training history: no histories to plot")
    if names is not None and len(names) != len(histories):
        raise LenetError(f"training history: {len(names)} names for {len(histories)} histories")
    for index, history in enumerate(histories):
        _check_history(history, f"history {index + 1}")
    single = len(histories) == 1
    colors = plt.get_cmap("tab10")
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.3))
    for index, history in enumerate(histories):
        epochs = np.arange(1, len(history["accuracy"]) + 1)
        marker = line_marker(len(epochs))  # one epoch is a point: a line without markers draws nothing
        for ax, metric in ((acc_ax, "accuracy"), (loss_ax, "loss")):
            if single:
                ax.plot(epochs, history[metric], "o-", color="tab:blue", label="train", ms=3)
                ax.plot(epochs, history[f"val_{metric}"], "s--", color="tab:orange", label="validation", ms=3)
            else:
                color = colors(index % 10)
                name = (names[index] if names else f"member {index + 1}") if ax is acc_ax else None
                ax.plot(epochs, history[metric], "-", color=color, alpha=0.8, label=name, marker=marker, ms=4)
                ax.plot(epochs, history[f"val_{metric}"], "--", color=color, alpha=0.8, marker=marker, ms=4)
    for ax, metric in ((acc_ax, "accuracy"), (loss_ax, "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        whole_number_ticks(ax, max(len(h["accuracy"]) for h in histories))
    acc_ax.set_title("accuracy")
    loss_ax.set_title("loss (cross-entropy, plus any L2 penalty)")
    if single:
        acc_ax.legend(loc="lower right")
        loss_ax.legend(loc="upper right")
    else:
        # One legend: colours name the members, line styles the sets (the same in both panels).
        acc_ax.plot([], [], "-", color="gray", label="train (solid)")
        acc_ax.plot([], [], "--", color="gray", label="validation (dashed)")
        acc_ax.legend(loc="lower right", fontsize=7, ncol=2 if len(histories) > 6 else 1)
    members = "" if single or names else f" ({len(histories)} members overlaid)"
    fig.suptitle(f"Training history: {title}{members}", fontsize=11, wrap=True)
    return save_figure(fig, path)
