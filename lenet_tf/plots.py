"""Figures saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from .runs import atomic_write  # noqa: E402


def plot_convergence(histories: Sequence[dict[str, list[float]]], path: str | Path, title: str) -> Path:
    """Training and validation accuracy per epoch; several histories (ensemble members) overlaid."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, history in enumerate(histories):
        epochs = range(1, len(history["accuracy"]) + 1)
        label = index == 0
        ax.plot(epochs, history["accuracy"], color="tab:blue", alpha=0.7, label="train" if label else None)
        ax.plot(epochs, history["val_accuracy"], color="tab:orange", alpha=0.7, label="validation" if label else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    members = f" ({len(histories)} members overlaid)" if len(histories) > 1 else ""
    ax.set_title(title + members)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)


def plot_roc_curves(
    labels: np.ndarray,
    probabilities: Sequence[np.ndarray],
    auc: dict[str, Any],
    path: str | Path,
    title: str,
) -> Path:
    """One-vs-rest ROC curve per digit, averaged over repeats (TPR interpolated on a common FPR
    grid), with the AUC mean ± std in the legend; a log FPR axis shows the region that differs."""
    grid = np.logspace(-5, 0, 400)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colors = plt.get_cmap("tab10")
    for digit in range(len(auc["mean"])):
        positives = np.asarray(labels) == digit
        curves = []
        for proba in probabilities:
            fpr, tpr, _ = roc_curve(positives, proba[:, digit])
            curves.append(np.interp(grid, fpr, tpr))
        ax.plot(
            grid, np.mean(curves, axis=0), color=colors(digit),
            label=f"{digit}: AUC {auc['mean'][digit]:.4f} ± {auc['std'][digit]:.4f}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false positive rate (log scale)")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC curves, one vs rest (test, {len(probabilities)} repeats): {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(title="digit", fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_confusion(confusion: dict[str, Any], path: str | Path, title: str) -> Path:
    """Mean row-normalised confusion matrix, each cell annotated with mean ± std (in %)."""
    mean, std = np.asarray(confusion["mean"]), np.asarray(confusion["std"])
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(mean, cmap="Blues", vmin=0, vmax=1)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            if mean[i, j] >= 0.0005 or i == j:
                color = "white" if mean[i, j] > 0.5 else "black"
                text = f"{100 * mean[i, j]:.1f}\n±{100 * std[i, j]:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xticks(range(mean.shape[1]))
    ax.set_yticks(range(mean.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Confusion matrix, % of each true digit (mean ± std, {confusion['n']} repeats)\n{title}")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true digit")
    return _save(fig, path)


def plot_repeat_accuracy(repeats: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Train, validation and test accuracy of every repeat, with each set's mean as a line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, len(repeats) + 1)
    for name, color in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:green")):
        values = np.array([r[f"{name}_accuracy"] for r in repeats])
        ax.plot(x, values, "o", color=color, label=f"{name} (mean {values.mean():.4f})")
        ax.axhline(values.mean(), color=color, alpha=0.5, linestyle="--")
    ax.set_xticks(x)
    ax.set_xlabel("repeat")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy across repeats: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_learning_curve(curve: dict[str, Any], path: str | Path, title: str) -> Path:
    """Mean ± std bands of train and test accuracy against the number of training images."""
    sizes = np.asarray(curve["sizes"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, color in (("train", "tab:blue"), ("test", "tab:green")):
        mean = np.asarray(curve[f"{name}_mean"])
        std = np.asarray(curve[f"{name}_std"])
        ax.plot(sizes, mean, "o-", color=color, label=f"{name} accuracy")
        ax.fill_between(sizes, mean - std, mean + std, color=color, alpha=0.2)
    ax.set_xlabel("training images")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Learning curve (mean ± std over {curve['repeats']} repeats): {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)
