"""Figures: each ``plot_*`` function returns its matplotlib Figure, written as PNG when given a path.

Every figure goes through :func:`save_figure`, which moves a legend that covers plotted data to a free
corner of its axes, or out of them when none is free: where the data fall depends on the run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# No backend is chosen here: a notebook keeps its own (the figures are written to files and closed,
# so nothing pops up), the command line picks Agg (cli.main), and matplotlib falls back to Agg
# by itself on a machine without a display.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from sklearn.metrics import roc_curve  # noqa: E402

from .rundir import atomic_write  # noqa: E402
from .stats import pm_at  # noqa: E402

SERIES = (("accuracy", "tab:blue", "train"), ("val_accuracy", "tab:orange", "validation"))
LEGEND_SPOTS = ("upper right", "upper left", "lower right", "lower left", "center right", "center left",
                "upper center", "lower center")  # fmt: skip
OUTSIDE_RIGHT = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
CONFUSION_FLOOR = 0.1  # % of a true digit: the log colour scale's white end (rarer errors look like none)


def plural(count: int, noun: str) -> str:
    """``1 repeat``, ``3 repeats``: the titles of one-repeat (one-epoch, one-trial) runs read right."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def whole_number_ticks(ax: plt.Axes, last: int, first: int = 1) -> None:
    """x limits half a step beyond [first, last] and integer ticks (epochs, repeats, trials):
    matplotlib pads a single epoch to 0.945–1.055 and ticks fractions of it."""
    ax.set_xlim(first - 0.5, max(last, first) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


def line_marker(points: int) -> str | None:
    """A marker for a one-point curve: a line through a single point draws nothing."""
    return "o" if points == 1 else None


def _log_axis(ax: plt.Axes, values: np.ndarray) -> None:
    """Log y axis on the whole decades around ``values``, ticked at 1-2-5 as plain numbers: a short
    run's values span a fraction of a decade, where matplotlib labels odd ticks (``8.6×10⁻¹``)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    low, high = (values.min(), values.max()) if values.size else (1.0, 1.0)
    low, high = 10.0 ** math.floor(math.log10(low)), 10.0 ** math.ceil(math.log10(high))
    high = max(high, 10 * low)  # a value on a power of ten: still a whole decade
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    decades = round(math.log10(high / low))
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def save_figure(fig: Figure, path: str | Path | None) -> Figure:
    """Lay ``fig`` out (legends moved off the data) and, with a ``path``, write it as PNG.

    A written figure is closed in pyplot, so that a loop of runs leaks none and a notebook shows
    only the figures it asks for; the returned Figure still displays (a notebook cell that ends with
    it shows it). ``path`` None: the figure stays open, unsaved, for the caller to show or save.
    """
    fig.tight_layout()
    for _ in range(3):  # moving a legend out of its axes shrinks them, which can put data under another
        if not _clear_legends(fig):
            break
        fig.tight_layout()
    if path is None:
        return fig
    try:
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return fig


def _clear_legends(fig: plt.Figure) -> bool:
    """Move every axes legend that covers a plotted point to the first free spot of its axes, or
    out to their right; returns whether one moved (the layout is then redone)."""
    renderer = fig.canvas.get_renderer()
    moved = False
    for ax in fig.axes:
        legend = ax.get_legend()
        points = _plotted_points(ax) if legend is not None else None
        if legend is None or not _covers(legend, points, renderer):
            continue
        moved = True
        for spot in LEGEND_SPOTS:
            legend.set_loc(spot)
            if not _covers(legend, points, renderer):
                break
        else:
            legend.set_loc(OUTSIDE_RIGHT["loc"])
            legend.set_bbox_to_anchor(OUTSIDE_RIGHT["bbox_to_anchor"], transform=ax.transAxes)
    return moved


def _covers(legend: Any, points: np.ndarray, renderer: Any) -> bool:
    box = legend.get_window_extent(renderer)
    return bool(np.any((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) &
                       (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)))  # fmt: skip


def _plotted_points(ax: plt.Axes) -> np.ndarray:
    """Display coordinates of what ``ax`` plots and shows: line vertices and points along their
    segments, scatter points, error bar ends (fills and images are backgrounds a legend may cover)."""
    chunks = [np.empty((0, 2))]
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if len(xy) > 1 and line.get_linestyle() not in ("None", "", " "):
            steps = np.linspace(0, 1, 16)[:, None, None]
            xy = (xy[:-1] + steps * (xy[1:] - xy[:-1])).reshape(-1, 2)
        chunks.append(xy)
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and len(collection.get_offsets()):
            chunks.append(collection.get_offset_transform().transform(collection.get_offsets()))
        elif isinstance(collection, LineCollection) and collection.get_segments():
            ends = np.concatenate([np.asarray(s, dtype=float) for s in collection.get_segments()])
            chunks.append(collection.get_transform().transform(ends))
    points = np.concatenate(chunks)
    points = points[np.isfinite(points).all(axis=1)]
    box = ax.bbox
    inside = (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)
    return points[inside]


def plot_convergence(
    histories: Sequence[dict[str, list[float]]],
    path: str | Path | None,
    title: str,
    *,
    repeats: int = 1,
    run: str | None = None,
) -> Figure:
    """Training and validation accuracy per epoch (left, zoomed on the later epochs) and error rate
    on a log axis (right, where the last epochs of a 99 %-accurate model differ), several histories
    overlaid: an ensemble's members, or ``repeats`` repeated trainings of as many members each.
    ``run`` names the run in the title (by default the directory the figure is written to): runs of
    one model have one model title."""
    fig, (ax, err) = plt.subplots(1, 2, figsize=(10, 4.4))
    errors = [np.empty(0)]
    for index, history in enumerate(histories):
        epochs = np.arange(1, len(history["accuracy"]) + 1)
        for key, color, name in SERIES:
            if key not in history:  # a member refit on every label has no validation images
                continue
            values = np.asarray(history[key], dtype=float)
            error = np.clip(100 * (1 - values), 1e-3, None)  # log axis: a perfect epoch stays on it
            style = {"color": color, "alpha": 0.7, "marker": line_marker(len(epochs)), "markersize": 5}
            ax.plot(epochs, values, label=name if index == 0 else None, **style)
            err.plot(epochs, error, **style)
            errors.append(error)
    _zoom_on_last_epochs(ax, [h[key] for h in histories for key, _, _ in SERIES if key in h])
    _log_axis(err, np.concatenate(errors))
    ax.set_ylabel("accuracy (zoomed on the last epochs)")
    err.set_ylabel("error rate, % (1 − accuracy, log scale)")
    last = max((len(h["accuracy"]) for h in histories), default=1)
    for axis in (ax, err):
        axis.set_xlabel("epoch")
        whole_number_ticks(axis, last)
        axis.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    if run is None:  # the run directory the figure is written into names the run (unsaved: none)
        run = "" if path is None else Path(path).parent.name
    # Over both panels, wrapped at the figure's edges: a long title is not clipped at one panel's edge.
    fig.suptitle(_convergence_title(title, run, len(histories), repeats), wrap=True)
    return save_figure(fig, path)


def _zoom_on_last_epochs(ax: plt.Axes, curves: Sequence[Sequence[float]]) -> None:
    """Accuracy limits from the top down to three times the worst final error rate: at 97 % the
    last epochs differ by tenths of a point, flat lines on a 0.3–1.0 axis. The first epochs, cut
    off where the final error is small, are on the log error panel of :func:`plot_convergence`."""
    curves = [np.asarray(values, dtype=float) for values in curves if len(values)]
    if not curves:
        return
    worst_final_error = max(1 - values[-1] for values in curves)
    low = max(min(values.min() for values in curves), 1 - 3 * worst_final_error)
    high = max(values.max() for values in curves)
    pad = max(0.05 * (high - low), 0.002)
    ax.set_ylim(max(low - pad, 0.0), high + pad)


def _convergence_title(title: str, run: str, count: int, repeats: int) -> str:
    """``run: model title`` and, on a line of its own (no doubled parentheses after a model title
    that has some), what is overlaid."""
    members = count // max(repeats, 1)
    overlaid = ""
    if repeats > 1:
        overlaid = plural(repeats, "repeat") + (f" × {plural(members, 'member')}" if members > 1 else "")
    elif members > 1:
        overlaid = plural(members, "member")
    heading = f"{run}: {title}" if run else title
    return heading + (f"\n{overlaid} overlaid" if overlaid else "")


def plot_roc_curves(
    labels: np.ndarray,
    probabilities: Sequence[np.ndarray],
    auc: dict[str, Any],
    path: str | Path | None,
    title: str,
    *,
    digits: int = 4,
) -> Figure:
    """One-vs-rest ROC curve per digit, averaged over repeats (TPR interpolated on a common FPR
    grid), with the AUC mean ± std in the legend; a log FPR axis shows the region that differs.
    The axis starts at one false positive among the most negatives of any digit: below that the
    test set resolves nothing."""
    labels = np.asarray(labels)
    classes = len(auc["mean"])
    negatives = max(int(np.sum(labels != digit)) for digit in range(classes))
    start = 1 / max(negatives, 1)
    grid = np.logspace(np.log10(start), 0, 400)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.get_cmap("tab10")
    for digit in range(classes):
        positives = labels == digit
        curves = []
        for proba in probabilities:
            fpr, tpr, _ = roc_curve(positives, proba[:, digit])
            curves.append(np.interp(grid, fpr, tpr))
        ax.plot(
            grid, np.mean(curves, axis=0), color=colors(digit),
            label=f"{digit}: AUC {pm_at(auc, digit, digits)}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(start, 1)
    ax.set_xlabel(f"false positive rate (log scale, from 1 of {negatives:,} negatives)")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC curves, one vs rest (test, {plural(len(probabilities), 'repeat')}): {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    # Beside the axes: weak models' curves fill the corner a legend inside would take.
    ax.legend(title="digit", fontsize=8, **OUTSIDE_RIGHT)
    return save_figure(fig, path)


def plot_confusion(confusion: dict[str, Any], path: str | Path | None, title: str) -> Figure:
    """Mean row-normalised confusion matrix, each cell annotated with mean ± std (in %). Colour
    and colour bar are in % too, on a log scale from 0.1 %: errors of 0.2-2 % are visibly shaded
    next to the 95-99 % diagonal (on a linear 0-100 scale they would all be white)."""
    percent, std = 100 * np.asarray(confusion["mean"]), 100 * np.asarray(confusion["std"])
    norm = LogNorm(vmin=CONFUSION_FLOOR, vmax=100)
    cmap = plt.get_cmap("Blues")
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(np.clip(percent, CONFUSION_FLOOR, 100), cmap=cmap, norm=norm)
    for i in range(percent.shape[0]):
        for j in range(percent.shape[1]):
            if percent[i, j] >= 0.05 or i == j:
                red, green, blue, _ = cmap(norm(np.clip(percent[i, j], CONFUSION_FLOOR, 100)))
                color = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"  # on dark cells
                text = f"{percent[i, j]:.1f}\n±{std[i, j]:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xticks(range(percent.shape[1]))
    ax.set_yticks(range(percent.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    repeats = plural(confusion["n"], "repeat")
    ax.set_title(f"Confusion matrix, % of each true digit (mean ± std, {repeats})\n{title}", wrap=True)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(f"% of the true digit (log scale; under {CONFUSION_FLOOR:g} % white)")
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    return save_figure(fig, path)


def plot_repeat_accuracy(repeats: Sequence[dict[str, Any]], path: str | Path | None, title: str) -> Figure:
    """Train, validation and test accuracy of every repeat, with each set's mean as a line; the
    three sets side by side at each repeat, so equal accuracies do not hide one another."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    x = np.arange(1, len(repeats) + 1)
    for offset, (name, color) in zip((-0.2, 0.0, 0.2), (("train", "tab:blue"), ("val", "tab:orange"),
                                                         ("test", "tab:green")), strict=True):  # fmt: skip
        values = np.array([r[f"{name}_accuracy"] for r in repeats])
        ax.plot(x + offset, values, "o", color=color, label=f"{name} (mean {values.mean():.4f})")
        ax.axhline(values.mean(), color=color, alpha=0.5, linestyle="--")
    ax.set_xticks(x)
    ax.set_xlim(0.5, len(repeats) + 0.5)
    ax.set_xlabel("repeat")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy of {plural(len(repeats), 'repeat')}: {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_learning_curve(curve: dict[str, Any], path: str | Path | None, title: str) -> Figure:
    """Mean ± std bands of train and test accuracy against the number of training images."""
    sizes = np.asarray(curve["sizes"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, color in (("train", "tab:blue"), ("test", "tab:green")):
        mean = np.asarray(curve[f"{name}_mean"])
        std = np.asarray(curve[f"{name}_std"])
        ax.plot(sizes, mean, "o-", color=color, label=f"{name} accuracy")
        ax.fill_between(sizes, mean - std, mean + std, color=color, alpha=0.2)
    if len(sizes) == 1:  # the size trained, not fractions of an image around it
        ax.set_xticks(sizes, [f"{sizes[0]:,}"])
    ax.set_xlabel("training images")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Learning curve (mean ± std over {plural(curve['repeats'], 'repeat')}): {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_optimization_history(objective: Sequence[float | None], path: str | Path | None, title: str) -> Figure:
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
        single = shown.sum() == 1  # a level mark that leaves the one trial's point in sight
        ax.step(trials[shown], running[shown], where="post", color="tab:red", label="best so far",
                marker="_" if single else None, markersize=16)  # fmt: skip
    if (~done).any():
        low = np.nanmin(values) if done.any() else 0.0
        ax.plot(trials[~done], np.full((~done).sum(), low), "x", color="black", label="failed")
    whole_number_ticks(ax, len(values))
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel("validation accuracy (objective)")
    completed = f"{done.sum()} of {plural(len(values), 'trial')} completed"
    ax.set_title(f"Optimization history ({completed}): {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_intermediate_values(
    curves: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    path: str | Path | None,
    title: str,
    best: str | None = None,
) -> Figure:
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
    whole_number_ticks(ax, max((max(epochs) for _, epochs, _ in curves if len(epochs)), default=1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Validation accuracy per epoch, {plural(len(curves), 'trial')}: {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    if best is not None:
        ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_hparam_importance(
    names: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    path: str | Path | None,
    title: str,
    note: str | None = None,
) -> Figure:
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
    ax.set_title(f"Hyperparameter importance (permutation, random forest)\n{title}", wrap=True)
    return save_figure(fig, path)


def plot_accuracy_vs_epsilon(
    epsilons: Sequence[float],
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path | None,
    title: str,
) -> Figure:
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
    ax.set_title(f"FGSM accuracy against ε: {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return save_figure(fig, path)


def plot_configuration_accuracy(
    labels: Sequence[str],
    summaries: Sequence[dict[str, Any]],
    path: str | Path | None,
    title: str,
) -> Figure:
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
    ax.set_xlim(-0.5, len(labels) - 0.5)
    n = summaries[0]["test_accuracy"]["n"] if summaries else 0
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ({plural(n, 'repeat')} each)", wrap=True)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right")  # moved by _save where the points are (a weak last configuration)
    return save_figure(fig, path)


def plot_learning_rate_grid(
    rows: Sequence[tuple[str, float, float, float]],
    path: str | Path | None,
    title: str,
) -> Figure:
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
    ax.set_title(f"Test accuracy against the learning rate: {title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return save_figure(fig, path)


def plot_configuration_convergence(
    histories: dict[str, Sequence[dict[str, list[float]]]],
    path: str | Path | None,
    title: str,
) -> Figure:
    """Validation accuracy per epoch of every configuration (one colour each, repeats overlaid)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.get_cmap("tab20" if len(histories) > 10 else "tab10")
    last = 1
    for index, (label, runs) in enumerate(histories.items()):
        for r, history in enumerate(runs):
            epochs = np.arange(1, len(history["val_accuracy"]) + 1)
            last = max(last, len(epochs))
            ax.plot(epochs, history["val_accuracy"], color=colors(index), alpha=0.8, marker=line_marker(len(epochs)),
                    label=label if r == 0 else None)  # fmt: skip
    whole_number_ticks(ax, last)
    _zoom_on_last_epochs(ax, [h["val_accuracy"] for runs in histories.values() for h in runs])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (zoomed on the last epochs)")
    # The study's title on a line of its own: after the heading it ran past the figure's right edge.
    ax.set_title(f"Validation accuracy per epoch (repeats overlaid)\n{title}", wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2 if len(histories) > 6 else 1)
    return save_figure(fig, path)


def plot_gradient_magnitudes(
    magnitudes: dict[str, dict[str, list[float]]],
    path: str | Path | None,
    title: str,
) -> Figure:
    """One panel per configuration: mean |gradient| of each layer's kernel per epoch (epoch 0 is
    the initialisation), log scale; ``magnitudes`` maps configuration → layer → per-epoch values."""
    n = max(len(magnitudes), 1)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    # One y scale for every panel: configurations compare at a glance.
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 1.6, 3.2 * rows + 0.6), squeeze=False,
                             sharey=True)  # fmt: skip
    last = 0
    for ax, (label, layers) in zip(axes.flat, magnitudes.items(), strict=False):
        for layer, values in layers.items():
            values = np.asarray(values, dtype=float)
            shown = values > 0  # a log axis cannot show an exactly zero gradient
            ax.plot(np.arange(len(values))[shown], values[shown], marker=".", label=layer)
            last = max(last, len(values) - 1)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    for ax in axes.flat:
        whole_number_ticks(ax, last, first=0)
    for ax in list(axes.flat)[len(magnitudes) :]:
        ax.set_axis_off()
    axes[0][0].set_ylabel("mean |∂loss/∂kernel|")
    if magnitudes:  # the layers are the same in every panel: one legend, beside the top-right panel
        axes[0][-1].legend(*axes[0][0].get_legend_handles_labels(), title="layer", fontsize=7, **OUTSIDE_RIGHT)
    fig.suptitle(f"Per-layer gradient magnitude on a fixed batch: {title}", fontsize=11, wrap=True)
    return save_figure(fig, path)


def plot_baseline_grids(
    grids: Sequence[dict[str, Any]],
    timings: Sequence[tuple[str, float, float]],
    path: str | Path | None,
    title: str,
    measure: str = "test accuracy",
) -> Figure:
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
        ax.set_title(f"{grid['name']}: {measure}", wrap=True)
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
    fig.suptitle(title, fontsize=11, wrap=True)
    return save_figure(fig, path)


def plot_pca_scatter(coords: np.ndarray, labels: np.ndarray, explained: Sequence[float], total: int,
                     path: str | Path | None) -> Figure:  # fmt: skip
    """2-D PCA of digits coloured by label, each present digit written at its class centre. The
    legend beside the axes (the points fill them) lists only the digits present."""
    coords, labels = np.asarray(coords, dtype=float), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(8.8, 6.5))
    colors = plt.get_cmap("tab10")
    for digit in np.unique(labels):
        mine = labels == digit
        ax.scatter(coords[mine, 0], coords[mine, 1], s=4, alpha=0.5, color=colors(int(digit) % 10), label=str(digit))
    for digit in np.unique(labels):  # over every cluster: the digit at its class centre reads without the legend
        centre = coords[labels == digit].mean(axis=0)
        box = {"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1}
        ax.text(*centre, str(digit), fontsize=14, weight="bold", ha="center", va="center",
                color=colors(int(digit) % 10), bbox=box)  # fmt: skip
    ax.set_xlabel(f"principal component 1 ({100 * explained[0]:.1f} % of variance)")
    ax.set_ylabel(f"principal component 2 ({100 * explained[1]:.1f} % of variance)")
    subset = f" (stratified subsample of {total:,})" if len(labels) < total else ""
    ax.set_title(f"PCA of {len(labels):,} training digits{subset}, coloured by label", wrap=True)
    ax.legend(title="digit", markerscale=4, fontsize=8, **OUTSIDE_RIGHT)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
