"""Figures saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from .rundir import atomic_write  # noqa: E402
from .stats import pm_at  # noqa: E402


def plot_convergence(
    histories: Sequence[dict[str, list[float]]], path: str | Path, title: str, *, repeats: int = 1
) -> Path:
    """Training and validation accuracy per epoch (left) and error rate on a log axis (right, where
    the last epochs of a 99 %-accurate model differ), several histories overlaid: an ensemble's
    members, or ``repeats`` repeated trainings of as many members each."""
    fig, (ax, err) = plt.subplots(1, 2, figsize=(10, 4.2))
    for index, history in enumerate(histories):
        epochs = range(1, len(history["accuracy"]) + 1)
        label = index == 0
        for key, color, name in (("accuracy", "tab:blue", "train"), ("val_accuracy", "tab:orange", "validation")):
            values = np.asarray(history[key], dtype=float)
            ax.plot(epochs, values, color=color, alpha=0.7, label=name if label else None)
            err.plot(epochs, np.clip(1 - values, 1e-5, None), color=color, alpha=0.7)  # log axis: no zeros
    ax.set_ylabel("accuracy")
    err.set_ylabel("error rate (1 − accuracy, log scale)")
    err.set_yscale("log")
    for axis in (ax, err):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        axis.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    members = len(histories) // max(repeats, 1)
    overlaid = ""
    if repeats > 1:
        overlaid = f" ({repeats} repeats" + (f" × {members} members" if members > 1 else "") + " overlaid)"
    elif members > 1:
        overlaid = f" ({members} members overlaid)"
    fig.suptitle(title + overlaid)  # over both panels: a long title is not clipped at one panel's edge
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
    *,
    digits: int = 4,
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
            label=f"{digit}: AUC {pm_at(auc, digit, digits)}",
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
    ax.set_title(f"Hyperparameter importance (permutation, random forest)\n{title}")
    return _save(fig, path)


def plot_accuracy_vs_epsilon(
    epsilons: Sequence[float],
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str,
) -> Path:
    """Accuracy under the FGSM attack against ε: one line per training (``name → (mean, std)``)
    with a ± std band over repeats."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.asarray(epsilons, dtype=float)
    for name, (mean, std) in curves.items():
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        line = ax.plot(x, mean, "o-", label=name)[0]
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("ε (L∞ perturbation, pixels in [0, 1])")
    ax.set_ylabel("test accuracy under FGSM")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"FGSM accuracy against ε: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_configuration_accuracy(
    labels: Sequence[str],
    summaries: Sequence[dict[str, Any]],
    path: str | Path,
    title: str,
) -> Path:
    """Validation and test accuracy (mean ± std over repeats) of each configuration of a study;
    ``summaries[i]`` holds ``val_accuracy`` and ``test_accuracy`` summaries (see stats.summarize)."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(labels) + 2.5), 4.8))
    x = np.arange(len(labels))
    for offset, (name, color) in ((-0.12, ("val", "tab:orange")), (0.12, ("test", "tab:green"))):
        mean = [s[f"{name}_accuracy"]["mean"] for s in summaries]
        std = [s[f"{name}_accuracy"]["std"] for s in summaries]
        ax.errorbar(x + offset, mean, yerr=std, fmt="o", color=color, capsize=3, label=f"{name} (mean ± std)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if len(labels) > 5 else 0, ha="right" if len(labels) > 5 else "center")
    n = summaries[0]["test_accuracy"]["n"] if summaries else 0
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ({n} repeat(s) each)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_learning_rate_grid(
    rows: Sequence[tuple[str, float, float, float]],
    path: str | Path,
    title: str,
) -> Path:
    """Test accuracy (mean ± std) against the learning rate, one line per optimizer;
    ``rows`` are ``(optimizer, learning rate, mean, std)``."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(row[0] for row in rows):
        points = sorted((lr, mean, std) for opt, lr, mean, std in rows if opt == name)
        lrs, means, stds = (np.array(v, dtype=float) for v in zip(*points, strict=True))
        ax.errorbar(lrs, means, yerr=stds, fmt="o-", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (initial, for step decay)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Test accuracy against the learning rate: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_configuration_convergence(
    histories: dict[str, Sequence[dict[str, list[float]]]],
    path: str | Path,
    title: str,
) -> Path:
    """Validation accuracy per epoch of every configuration (one colour each, repeats overlaid)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.get_cmap("tab20" if len(histories) > 10 else "tab10")
    for index, (label, runs) in enumerate(histories.items()):
        for r, history in enumerate(runs):
            epochs = range(1, len(history["val_accuracy"]) + 1)
            ax.plot(epochs, history["val_accuracy"], color=colors(index), alpha=0.8, label=label if r == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy per epoch (repeats overlaid): {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2 if len(histories) > 6 else 1)
    return _save(fig, path)


def plot_gradient_magnitudes(
    magnitudes: dict[str, dict[str, list[float]]],
    path: str | Path,
    title: str,
) -> Path:
    """One panel per configuration: mean |gradient| of each layer's kernel per epoch (epoch 0 is
    the initialisation), log scale; ``magnitudes`` maps configuration → layer → per-epoch values."""
    n = max(len(magnitudes), 1)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    # One y scale for every panel: configurations compare at a glance.
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows + 0.6), squeeze=False, sharey=True)
    for ax, (label, layers) in zip(axes.flat, magnitudes.items(), strict=False):
        for layer, values in layers.items():
            values = np.asarray(values, dtype=float)
            shown = values > 0  # a log axis cannot show an exactly zero gradient
            ax.plot(np.arange(len(values))[shown], values[shown], marker=".", label=layer)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(magnitudes) :]:
        ax.set_axis_off()
    axes[0][0].set_ylabel("mean |∂loss/∂kernel|")
    if magnitudes:
        axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Per-layer gradient magnitude on a fixed batch: {title}", fontsize=11)
    return _save(fig, path)


def plot_baseline_grids(
    grids: Sequence[dict[str, Any]],
    timings: Sequence[tuple[str, float, float]],
    path: str | Path,
    title: str,
    measure: str = "test accuracy",
) -> Path:
    """Heat maps of ``measure`` over each baseline's grid, and accuracy against fit + predict time.

    ``grids[i]`` holds ``name``, ``row_name``, ``rows``, ``column_name``, ``columns`` and ``values``
    (rows × columns test accuracy, None where a cell was not run); ``timings`` are
    ``(family, seconds, accuracy)`` per cell."""
    fig, axes = plt.subplots(1, len(grids) + 1, figsize=(5 * (len(grids) + 1), 4.6), squeeze=False)
    for ax, grid in zip(axes[0], grids, strict=False):
        values = np.array([[np.nan if v is None else v for v in row] for row in grid["values"]], dtype=float)
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        middle = np.nanmean([np.nanmin(values), np.nanmax(values)]) if np.isfinite(values).any() else 0.0
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if not np.isnan(values[i, j]):
                    color = "black" if values[i, j] > middle else "white"  # readable on viridis' yellow end
                    ax.text(j, i, f"{values[i, j]:.4f}", ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(len(grid["columns"])))
        ax.set_xticklabels([str(c) for c in grid["columns"]])
        ax.set_yticks(range(len(grid["rows"])))
        ax.set_yticklabels([str(r) for r in grid["rows"]])
        ax.set_xlabel(grid["column_name"])
        ax.set_ylabel(grid["row_name"])
        ax.set_title(f"{grid['name']}: {measure}")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax = axes[0][-1]
    for family in dict.fromkeys(t[0] for t in timings):
        seconds = [t[1] for t in timings if t[0] == family]
        accuracy = [t[2] for t in timings if t[0] == family]
        ax.plot(seconds, accuracy, "o", alpha=0.8, label=family)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("fit + predict seconds (log scale)")
    ax.set_ylabel(measure)
    ax.set_title("Accuracy against cost")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
