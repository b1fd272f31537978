"""Preliminary data exploration: figures and a short Markdown summary of the digits.

:func:`explore` writes into ``out``::

    samples.png             random training digits with their labels
    label_distribution.png  digits per class (train) and per-class shares in every stratified split
    pixel_intensity.png     pixel-value histogram and ink per image (train vs test)
    pca_scatter.png         2-D PCA of a stratified subsample, coloured by label
    mean_digits.png         the mean image of each digit
    test_predictions.png    test digits with the predictions of a saved model (with ``model_run``)
    summary.md              the tables behind the figures
    summary.json            the same numbers, machine-readable
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from ..data import IMAGE_SIDE, N_CLASSES, DigitData, split_data, stratified_indices
from ..errors import LenetError
from ..figures import plot_digit_grid, plot_test_predictions
from ..plots import plot_pca_scatter, plt, save_figure
from ..rundir import markdown_table, write_json, write_text
from .runner import ExperimentResult

FIGURES = ("samples.png", "label_distribution.png", "pixel_intensity.png", "pca_scatter.png", "mean_digits.png")
TEST_FIGURE = "test_predictions.png"
_CHUNK = 4096  # images per pass when counting pixel values: bounded memory on the 70,000 Kaggle digits


def label_counts(labels: np.ndarray) -> np.ndarray:
    """Number of digits of each class 0-9."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=N_CLASSES)[:N_CLASSES]


def split_label_shares(data: DigitData, split_seed: int = 0) -> dict[str, list[float]]:
    """Per-class share of the labels in all training digits and in each part of both split protocols."""
    try:
        deployment = split_data(data, "deployment", seed=split_seed)
        evaluation = split_data(data, "evaluation", seed=split_seed)
    except ValueError as exc:  # scikit-learn: a class too small to stratify
        raise LenetError(f"{data.source}: too few labeled digits for the stratified splits ({exc})") from exc
    parts = {
        "all": data.train_labels,
        "deployment train": deployment.y_train,
        "deployment val": deployment.y_val,
        "evaluation train": evaluation.y_train,
        "evaluation val": evaluation.y_val,
        "evaluation test": evaluation.y_test,
    }
    return {name: (label_counts(labels) / len(labels)).tolist() for name, labels in parts.items()}


def pixel_statistics(images: np.ndarray) -> dict[str, Any]:
    """Exact statistics of uint8 pixel values from their 256-bin histogram (no float copy of the data)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise LenetError(f"pixel statistics: expected uint8 images, got {images.dtype}")
    flat = images.reshape(len(images), -1)
    histogram = np.zeros(256, dtype=np.int64)
    for start in range(0, len(flat), _CHUNK):
        histogram += np.bincount(flat[start : start + _CHUNK].ravel(), minlength=256)
    total = int(histogram.sum())
    values = np.arange(256, dtype=np.float64)
    mean = float(histogram @ values / total)
    std = float(np.sqrt(histogram @ (values - mean) ** 2 / total))
    return {
        "images": len(images),
        "pixels": total,
        "mean": mean,
        "std": std,
        "mean_scaled": mean / 255,
        "std_scaled": std / 255,
        "zero_share": float(histogram[0] / total),
        "full_share": float(histogram[255] / total),
        "histogram": histogram.tolist(),
    }


def ink_per_image(images: np.ndarray) -> np.ndarray:
    """Share of non-zero pixels in each image (how much of the 28×28 frame the stroke covers)."""
    images = np.asarray(images)
    return np.count_nonzero(images.reshape(len(images), -1), axis=1) / (IMAGE_SIDE * IMAGE_SIDE)


def pca_projection(
    images: np.ndarray, labels: np.ndarray, points: int = 5000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """2-D PCA of a stratified subsample: coordinates, their labels and the explained-variance ratios."""
    keep = stratified_indices(np.asarray(labels), points, seed, what="PCA points")
    x = np.asarray(images)[keep].reshape(len(keep), -1).astype(np.float32) / 255.0
    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(x)
    return coords, np.asarray(labels)[keep], pca.explained_variance_ratio_.tolist()


def _check_explore_inputs(data: DigitData, model_run: str | Path | None, members: int | None, **counts: int) -> None:
    """One line naming the first bad argument of :func:`explore`."""
    lows = {"samples": 1, "test_samples": 1, "pca_points": 20}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lows[name]:
            raise LenetError(f"explore: {name} must be an integer ≥ {lows[name]}, got {value!r}")
    if members is not None and (isinstance(members, bool) or not isinstance(members, int) or members < 1):
        raise LenetError(f"explore: members must be an integer ≥ 1, got {members!r}")
    if len(data.train_labels) < 2 * N_CLASSES:
        raise LenetError(f"{data.source}: {len(data.train_labels)} labeled digits; exploration needs at least 20")
    if model_run is not None and data.test_images is None:
        raise LenetError(f"{data.source}: no test images (test.csv) for the predictions of {model_run}")


def explore(
    data: DigitData,
    out: str | Path,
    *,
    model_run: str | Path | None = None,
    members: int | None = None,
    samples: int = 40,
    test_samples: int = 40,
    pca_points: int = 5000,
    seed: int = 0,
    split_seed: int = 0,
    echo: Callable[[str], None] = print,
) -> ExperimentResult:
    """Write the exploration figures, ``summary.md`` and ``summary.json`` into ``out``; return them
    (``result["label_counts"]`` reads the summary, as summary.json does).

    ``model_run`` is a run directory (or a ``members/`` directory) whose saved model(s) predict a
    grid of test digits; ``members`` limits how many of its members are averaged.
    """
    _check_explore_inputs(data, model_run, members, samples=samples, test_samples=test_samples, pca_points=pca_points)
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts = label_counts(data.train_labels)
    shares = split_label_shares(data, split_seed)
    stats = {"train": pixel_statistics(data.train_images)}
    if data.test_images is not None:
        stats["test"] = pixel_statistics(data.test_images)
    coords, pca_labels, explained = pca_projection(data.train_images, data.train_labels, pca_points, seed)
    plot_pca_scatter(coords, pca_labels, explained, len(data.train_labels), out / "pca_scatter.png")

    written = [
        _plot_samples(data, rng, samples, out / "samples.png"),
        _plot_label_distribution(counts, shares, split_seed, out / "label_distribution.png"),
        _plot_pixel_intensity(data, stats, out / "pixel_intensity.png"),
        out / "pca_scatter.png",
        _plot_mean_digits(data, counts, out / "mean_digits.png"),
    ]
    predictions = None
    if model_run is not None:
        path, predictions = _plot_test_predictions(data, model_run, members, test_samples, out / TEST_FIGURE)
        written.append(path)

    summary = {
        "data_source": data.source,
        "train_images": len(data.train_labels),
        "test_images": None if data.test_images is None else len(data.test_images),
        "test_labeled": data.test_labels is not None,
        "label_counts": counts.tolist(),
        "split_seed": split_seed,
        "split_label_shares": shares,
        "pixel_statistics": {name: {k: v for k, v in s.items() if k != "histogram"} for name, s in stats.items()},
        "pca": {"points": len(pca_labels), "explained_variance_ratio": explained},
        "test_predictions": predictions,
        "figures": [p.name for p in written],
    }
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", summary_markdown(summary))
    echo(f"exploration of {data.source}: {', '.join(summary['figures'])}, summary.md, summary.json in {out}")
    paths = {p.name: p for p in (*written, out / "summary.json", out / "summary.md")}
    config = {"kind": "explore", "data_source": data.source, "model_run": None if model_run is None else str(model_run),
              "members": members, "samples": samples, "test_samples": test_samples, "pca_points": pca_points,
              "seed": seed, "split_seed": split_seed}  # fmt: skip
    return ExperimentResult(out, config, [], summary, paths, resumed=False)


# ----------------------------------------------------------------------------- figures


def _plot_samples(data: DigitData, rng: np.random.Generator, samples: int, path: Path) -> Path:
    n = min(samples, len(data.train_labels))
    chosen = np.sort(rng.choice(len(data.train_labels), size=n, replace=False))
    captions = [f"label {data.train_labels[i]}" for i in chosen]
    title = f"{n} random training digits of {len(data.train_labels):,} (caption: the label)"
    plot_digit_grid(data.train_images[chosen], captions, path, title=title)
    return path


def _plot_label_distribution(counts: np.ndarray, shares: dict[str, list[float]], split_seed: int, path: Path) -> Path:
    digits = np.arange(N_CLASSES)
    fig, (count_ax, share_ax) = plt.subplots(1, 2, figsize=(13, 4.6))
    bars = count_ax.bar(digits, counts, color="tab:blue")
    count_ax.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=7)
    count_ax.axhline(counts.mean(), color="gray", linestyle="--", label=f"uniform ({counts.mean():,.0f})")
    count_ax.set_xticks(digits)
    count_ax.set_xlabel("digit")
    count_ax.set_ylabel("training digits")
    count_ax.set_title(f"Label distribution of the {counts.sum():,} labeled digits")
    count_ax.legend(loc="lower right")
    width = 0.8 / len(shares)
    colors = plt.get_cmap("tab10")
    for index, (name, values) in enumerate(shares.items()):
        offset = (index - (len(shares) - 1) / 2) * width
        share_ax.bar(digits + offset, 100 * np.asarray(values), width, color=colors(index), label=name)
    low = 100 * min(min(v) for v in shares.values())
    high = 100 * max(max(v) for v in shares.values())
    share_ax.set_ylim(max(0.0, low - 1.5), high + 1.0)  # zoomed: the differences are tenths of a point
    share_ax.set_xticks(digits)
    share_ax.set_xlabel("digit")
    share_ax.set_ylabel("share of the split (%)")
    share_ax.set_title(f"Per-class share in each stratified split (split seed {split_seed})")
    share_ax.legend(fontsize=7, ncol=2, loc="upper right")
    share_ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)
    return path


def _plot_pixel_intensity(data: DigitData, stats: dict[str, dict[str, Any]], path: Path) -> Path:
    fig, (hist_ax, ink_ax) = plt.subplots(1, 2, figsize=(12, 4.4))
    sets = {"train": data.train_images}
    if data.test_images is not None:
        sets["test"] = data.test_images
    # Train drawn thicker underneath: the two sets usually coincide, and both should stay visible.
    for (name, images), color, width in zip(sets.items(), ("tab:blue", "tab:green"), (2.5, 1.0), strict=False):
        s = stats[name]
        histogram = np.asarray(s["histogram"]) / s["pixels"]
        label = f"{name}: mean {s['mean']:.1f}, std {s['std']:.1f}, {100 * s['zero_share']:.1f} % zero"
        hist_ax.step(np.arange(256), histogram, where="mid", color=color, linewidth=width, label=label)
        ink = ink_per_image(images)
        ink_ax.hist(100 * ink, bins=40, density=True, histtype="step", color=color, linewidth=1.5,
                    label=f"{name}: mean {100 * ink.mean():.1f} %")  # fmt: skip
    hist_ax.set_yscale("log")  # zero dominates; a log axis shows the stroke values too
    hist_ax.set_xlabel("pixel value (0 = background, 255 = full ink)")
    hist_ax.set_ylabel("share of pixels (log scale)")
    hist_ax.set_title("Pixel-value distribution")
    hist_ax.legend(fontsize=8, loc="upper center")
    hist_ax.grid(True, alpha=0.3)
    ink_ax.set_xlabel("non-zero pixels per image (% of 784)")
    ink_ax.set_ylabel("density of images")
    ink_ax.set_title("Ink per image")
    ink_ax.legend(fontsize=8)
    ink_ax.grid(True, alpha=0.3)
    save_figure(fig, path)
    return path


def _plot_mean_digits(data: DigitData, counts: np.ndarray, path: Path) -> Path:
    means, captions = [], []
    for digit in range(N_CLASSES):
        mine = data.train_images[data.train_labels == digit]
        means.append(mine.mean(axis=0, dtype=np.float64) if len(mine) else np.zeros((IMAGE_SIDE, IMAGE_SIDE)))
        captions.append(f"digit {digit}\n(n = {counts[digit]:,})")
    title = "Mean image of each digit (training digits; darker = more often inked)"
    plot_digit_grid(np.stack(means), captions, path, title=title, columns=5)
    return path


def _plot_test_predictions(
    data: DigitData, model_run: str | Path, members: int | None, test_samples: int, path: Path
) -> tuple[Path, dict[str, Any]]:
    from ..ensemble import Ensemble  # TensorFlow only when a model is asked for

    ensemble = Ensemble.load(model_run, limit=members)
    images = data.test_images[:test_samples]
    labels = None if data.test_labels is None else data.test_labels[: len(images)]
    probabilities = ensemble.predict_proba(images)
    who = f"{len(ensemble)} member(s) of {model_run}"
    title = f"First {len(images)} test digits with the predictions of {who}"
    title += "\ncaption: #ImageId: predicted digit (probability)"
    if labels is not None:
        title += "; red = wrong (this test set is labeled)"
    plot_test_predictions(images, probabilities, path, title=title, labels=labels)
    predicted = probabilities.argmax(axis=1)
    result: dict[str, Any] = {
        "model_run": str(model_run),
        "members": len(ensemble),
        "images": len(images),
        "predicted": predicted.tolist(),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
    }
    if labels is not None:
        result["accuracy"] = float(np.mean(predicted == labels))
    return path, result


# ----------------------------------------------------------------------------- summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """The exploration summary as Markdown tables."""
    counts = np.asarray(summary["label_counts"])
    total = int(counts.sum())
    test = summary["test_images"]
    test_text = (
        "no test images"
        if test is None
        else f"{test:,} test digits"
        + (" (labeled: a stand-in test set)" if summary["test_labeled"] else " (unlabeled)")
    )
    lines = [
        "# Data exploration\n\n",
        f"Data: {summary['data_source']}. {total:,} labeled training digits, {test_text}; 28×28 uint8 grey levels.\n\n",
        "## Label distribution (training digits)\n\n",
        markdown_table(
            ["digit", "count", "share"], [[d, f"{c:,}", f"{100 * c / total:.2f} %"] for d, c in enumerate(counts)]
        ),
    ]
    most, least = int(counts.argmax()), int(counts.argmin())
    lines.append(
        f"\nMost common: {most} ({100 * counts[most] / total:.2f} %); least common: {least}"
        f" ({100 * counts[least] / total:.2f} %); ratio {counts[most] / max(counts[least], 1):.2f}.\n\n"
    )
    lines.append(_splits_markdown(summary["split_label_shares"], summary["split_seed"]))
    lines.append("## Pixel intensities\n\n")
    stat_rows = [
        [name, f"{s['images']:,}", f"{s['mean']:.2f}", f"{s['std']:.2f}", f"{s['mean_scaled']:.4f}",
         f"{s['std_scaled']:.4f}", f"{100 * s['zero_share']:.2f} %", f"{100 * s['full_share']:.2f} %"]
        for name, s in summary["pixel_statistics"].items()
    ]  # fmt: skip
    lines.append(
        markdown_table(
            ["set", "images", "mean (0-255)", "std (0-255)", "mean (÷255)", "std (÷255)", "zero pixels", "255 pixels"],
            stat_rows,
        )
    )
    pca = summary["pca"]
    ratio = pca["explained_variance_ratio"]
    lines.append(
        f"\n## PCA\n\nOn a stratified subsample of {pca['points']:,} digits, the first two principal components"
        f" explain {100 * ratio[0]:.1f} % and {100 * ratio[1]:.1f} % of the pixel variance"
        f" ({100 * sum(ratio):.1f} % together).\n"
    )
    predictions = summary.get("test_predictions")
    if predictions:
        lines.append(_predictions_markdown(predictions))
    lines.append("\n## Figures\n\n")
    lines.extend(f"- `{name}`: {_FIGURE_TEXT[name]}\n" for name in summary["figures"])
    return "".join(lines)


def _splits_markdown(shares: dict[str, list[float]], split_seed: int) -> str:
    """Each split part's class shares beside the whole's, and the largest deviation."""
    names = list(shares)
    rows = [[d, *[f"{100 * shares[n][d]:.2f}" for n in names]] for d in range(N_CLASSES)]
    overall = np.asarray(shares["all"])
    deviation = {n: float(100 * np.abs(np.asarray(shares[n]) - overall).max()) for n in names[1:]}
    rows.append(["max abs. deviation from all (points)", "—", *[f"{deviation[n]:.2f}" for n in names[1:]]])
    worst = max(deviation, key=deviation.get)
    return (
        f"## Do the splits keep it? (per-class share in %, split seed {split_seed})\n\n"
        + markdown_table(["digit", *names], rows)
        + f"\nThe largest difference between a part's class share and the whole's is {deviation[worst]:.2f}"
        f" percentage points ({worst}): the stratified splits keep the label distribution.\n\n"
    )


def _predictions_markdown(predictions: dict[str, Any]) -> str:
    """The section on a finished run's predictions of the test digits."""
    text = (
        f"\n## Test predictions\n\n{predictions['images']} test digits predicted by {predictions['members']}"
        f" member(s) of `{predictions['model_run']}`; mean confidence {100 * predictions['mean_confidence']:.1f} %"
    )
    if "accuracy" in predictions:
        text += f"; accuracy on these labeled digits {100 * predictions['accuracy']:.1f} %"
    return text + ".\n"


_FIGURE_TEXT = {
    "samples.png": "random training digits with their labels",
    "label_distribution.png": "digits per class, and each class's share in every stratified split",
    "pixel_intensity.png": "pixel-value histogram (log scale) and ink per image, train vs test",
    "pca_scatter.png": "2-D PCA of a stratified subsample, coloured by label",
    "mean_digits.png": "the mean image of each digit",
    "test_predictions.png": "test digits with a saved model's predicted digit and probability",
}
