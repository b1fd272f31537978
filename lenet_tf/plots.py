"""Figures saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
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


def plot_optimization_history(objective: Sequence[float | None], path: str | Path, title: str) -> Path:
    """Objective of every trial in the order the trials started, with the running best; trials
    that did not complete are marked on the x axis."""
    values = np.array([np.nan if v is None else float(v) for v in objective])
    trials = np.arange(1, len(values) + 1)
    done = ~np.isnan(values)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.plot(trials[done], values[done], "o", color="tab:blue", alpha=0.7, label="trial")
    if done.any():
        running = np.fmax.accumulate(np.where(done, values, -np.inf))
        shown = running > -np.inf
        ax.step(trials[shown], running[shown], where="post", color="tab:red", label="best so far")
    if (~done).any():
        low = np.nanmin(values) if done.any() else 0.0
        ax.plot(trials[~done], np.full((~done).sum(), low), "x", color="black", label="failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel("validation accuracy (objective)")
    ax.set_title(f"Optimization history ({done.sum()} of {len(values)} trials completed): {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_intermediate_values(
    curves: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    path: str | Path,
    title: str,
    best: str | None = None,
) -> Path:
    """Validation accuracy per epoch of every trial (``(trial id, epochs, values)``), the best
    trial highlighted; a curve ends where early stopping (or its epoch budget) ended the trial."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for trial_id, epochs, values in curves:
        if trial_id == best:
            continue
        ax.plot(epochs, values, color="tab:blue", alpha=0.35, linewidth=1, marker="." if len(epochs) == 1 else None)
    for trial_id, epochs, values in curves:
        if trial_id == best:
            ax.plot(epochs, values, color="tab:red", linewidth=2, marker=".", label=f"best trial ({trial_id})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy per epoch, {len(curves)} trials: {title}")
    ax.grid(True, alpha=0.3)
    if best is not None:
        ax.legend(loc="lower right")
    return _save(fig, path)


def plot_hparam_importance(
    names: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    path: str | Path,
    title: str,
    note: str | None = None,
) -> Path:
    """Horizontal bars of hyperparameter importance (mean ± std), most important on top. With no
    names the figure says why (``note``), so a search always writes the same set of files."""
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.4 * max(len(names), 4)))
    if len(names):
        order = np.argsort(means)
        ax.barh(np.array(names)[order], np.array(means)[order], xerr=np.array(stds)[order], color="tab:blue", alpha=0.8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("drop in the random forest's R² when the hyperparameter is shuffled")
        ax.grid(True, axis="x", alpha=0.3)
    else:
        ax.set_axis_off()
    if note and not len(names):
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", wrap=True)
    ax.set_title(f"Hyperparameter importance (permutation, random forest): {title}")
    return _save(fig, path)
