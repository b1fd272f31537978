"""Learning curves: accuracy against the number of training images, over repeated trainings.

On the evaluation protocol's split, each point trains the model (or a K-member ensemble) on a
stratified random subset of the training part — a fraction of it, new subset and seeds every
repeat — with a large epoch cap and early stopping (patience 10) on the validation part, then
measures accuracy on the subset it was trained on and on the held-out test part. Every finished
point is on disk, so a rerun resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import options
from ..data import N_CLASSES, DigitData, Split, stratified_indices
from ..ensemble import train_members
from ..errors import LenetError
from ..models import model_title
from ..pipeline import open_experiment
from ..plots import plot_learning_curve
from ..rundir import environment, markdown_table, write_json, write_text
from ..seeds import point_seed, subset_seed
from ..stats import pm, summarize
from ..training import accuracy
from .runner import Experiment, ExperimentResult, Item, Progress, Records, run_experiment

POINTS_DIR = "points"


@dataclass(frozen=True)
class LearningCurveSpec(options.LearningCurveOptions):
    """Model, members per point, training-set fractions, repeats per fraction, seeds, protocol."""


def training_subset(split: Split, size: int, seed: int) -> Split:
    """``split`` with its training part replaced by a stratified random subset of ``size`` images."""
    keep = stratified_indices(split.y_train, size, seed, what="training subset of")
    return replace(split, x_train=split.x_train[keep], y_train=split.y_train[keep])


def learning_curve(
    spec: LearningCurveSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Compute (or resume) a learning curve into ``out`` and return it."""
    out, started = Path(out), time.perf_counter()
    job = open_experiment(spec, data=data, source=source, echo=echo)
    split = job.split
    sizes = _training_sizes(spec.fractions, len(split.y_train))
    echo(f"training sizes {sizes} of {len(split.y_train)}, {spec.repeats} repeats each")
    config = job.config(kind="learning_curve", **options.run_record(spec))
    title = model_title(job.model_info["name"]) + (f", ensemble of {spec.members}" if spec.members > 1 else "")
    # Repeat-major: an interrupted run already holds whole curves (every size, fewer repeats), and
    # each point's seed depends only on (repeat, size), so the order changes no result.
    plan = [
        Item(f"{POINTS_DIR}/size_{size:05d}/repeat_{r + 1:02d}", {"size": size, "repeat": r})
        for r in range(spec.repeats)
        for size in sizes
    ]

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        return _train_point(job.builder, split, spec, item["size"], item["repeat"], directory)

    def write_outputs(records: Records, progress_: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        rounds = progress_.done // len(sizes)  # whole rounds only: every size at the same repeats
        points = sorted((r for _, r in records if r["repeat"] <= rounds), key=lambda p: (p["size"], p["repeat"]))
        result = {
            "config": config,
            "fractions": list(spec.fractions),
            "repeats_requested": spec.repeats,
            "data_source": job.data.source,
            "curve": curve_summary(points, rounds),
            "points": points,
            "invocation_seconds": round(time.perf_counter() - started, 2),
            "environment": environment(),
        }
        return result, _write_curve(result, out, title)

    experiment = Experiment(
        "learning curve", plan, run_item, write_outputs, unit="fit",
        postfix=lambda item, record: {"size": item["size"], "test": f"{record['test_accuracy']:.3f}"},
    )  # fmt: skip
    run = run_experiment(
        experiment, out, config, force=force, progress=progress, echo=echo, executor=executor
    )
    echo(f"learning curve: {out}/learning_curve.json, learning_curve.md, learning_curve.png")
    return run


def _train_point(
    builder: Callable[[], Any], split: Split, spec: LearningCurveSpec, size: int, repeat: int, directory: Path
) -> dict[str, Any]:
    """Train the point (size, repeat) on its stratified subset and measure it."""
    seed = point_seed(spec.seed, repeat, size)
    shared = spec.subsets == "one"  # the reference's way: one subset per size, only the initialisation varies
    subset = training_subset(split, size, seed=subset_seed(spec.seed, size) if shared else seed)
    ensemble, results = train_members(
        builder, subset, members=spec.members, directory=directory, seed=seed, config=spec.train, progress=False
    )
    return {
        "size": size,
        "repeat": repeat + 1,
        "train_accuracy": accuracy(ensemble.predict_proba(subset.x_train), subset.y_train),
        "test_accuracy": accuracy(ensemble.predict_proba(split.x_test), split.y_test),
        "epochs": [res.epochs_run for res in results],
        "seconds": float(sum(res.seconds for res in results)),
    }


def _write_curve(result: dict[str, Any], out: Path, title: str) -> dict[str, Path]:
    paths = {name: out / name for name in ("learning_curve.json", "learning_curve.md", "learning_curve.png")}
    write_json(paths["learning_curve.json"], result)
    write_text(paths["learning_curve.md"], learning_curve_markdown(result))
    plot_learning_curve(result["curve"], paths["learning_curve.png"], title=title)
    return paths


def _training_sizes(fractions: Sequence[float], train_total: int) -> list[int]:
    sizes = sorted({max(1, round(f * train_total)) for f in fractions})
    if sizes[0] < 2 * N_CLASSES and sizes[0] < train_total:  # fail before hours of training, not in them
        raise LenetError(
            f"--fractions: {min(fractions)} of {train_total} training images is {sizes[0]};"
            f" a subset needs at least {2 * N_CLASSES}"
        )
    return sizes


def curve_summary(points: Sequence[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Per training size: mean and sample std (ddof=1) of train and test accuracy (see
    :func:`lenet_tf.stats.summarize`), and how many repeats each rests on."""
    sizes = sorted({p["size"] for p in points})
    curve: dict[str, Any] = {"sizes": sizes, "repeats": repeats}
    for name in ("train", "test"):
        summaries = [summarize([p[f"{name}_accuracy"] for p in points if p["size"] == size]) for size in sizes]
        curve[f"{name}_mean"] = [s["mean"] for s in summaries]
        curve[f"{name}_std"] = [s["std"] for s in summaries]
        curve["counts"] = [s["n"] for s in summaries]  # the same for train and test
    return curve


def learning_curve_markdown(result: dict[str, Any]) -> str:
    curve = result["curve"]
    rows = [
        [size, *(pm({"n": n, "mean": curve[f"{name}_mean"][i], "std": curve[f"{name}_std"][i]}, 4)
                 for name in ("train", "test"))]
        for i, (size, n) in enumerate(zip(curve["sizes"], curve["counts"], strict=True))
    ]  # fmt: skip
    model = result["config"]["model"]["name"]
    requested = result.get("repeats_requested", curve["repeats"])
    unfinished = (
        f"**{curve['repeats']} of {requested} repeats finished so far**; rerun the same command to continue.\n\n"
        if curve["repeats"] < requested
        else ""
    )
    header = (
        f"# Learning curve: {model_title(model)} ({curve['repeats']} repeats per size, mean ± std)\n\n"
        + unfinished
        + "Train accuracy: the trained model (the averaged members, for an ensemble) on its own training"
        " subset, in inference mode; test accuracy: on the held-out test part of the evaluation split.\n\n"
        + _subsets_text(result["config"])
    )
    table = markdown_table(["training images", "train accuracy", "test accuracy"], rows)
    return header + table + curve_cost_markdown(result.get("points", []))


def _subsets_text(config: dict[str, Any]) -> str:
    """Which variation the spread of each size measures (recorded since lenet_tf 0.2.0)."""
    subsets = config.get("subsets", "per-repeat")
    if subsets == "one":
        return ("Training subsets: one per size, drawn once and shared by every repeat (the reference's way):"
                " the spread is the initialisation's alone.\n\n")  # fmt: skip
    return ("Training subsets: each repeat draws its own subset of each size: the spread holds the data's"
            " variation and the initialisation's (the reference draws one subset per size: `--subsets one`).\n\n")


def curve_cost_markdown(points: Sequence[dict[str, Any]]) -> str:
    """What the points' own trainings cost, per size: epochs and seconds per training, and seconds
    per epoch, whose range across repeats shows how the machine's pace moved between sessions (a
    resumed run's wall time counts only what it trained itself, so the points are the record)."""
    if not points:
        return ""
    rows = []
    for size in sorted({p["size"] for p in points}):
        at = [p for p in points if p["size"] == size]
        epochs = [sum(p["epochs"]) for p in at]
        pace = [p["seconds"] / e for p, e in zip(at, epochs, strict=True) if e]
        rows.append([
            size, len(at), f"{np.mean(epochs):.0f} ({min(epochs)}–{max(epochs)})",
            f"{np.mean([p['seconds'] for p in at]):.0f}", f"{min(pace):.2f}–{max(pace):.2f}" if pace else "—",
        ])  # fmt: skip
    total = sum(p["seconds"] for p in points)
    return (
        f"\n## Cost\n\n{len(points)} trainings, {total:,.0f} s of training in all ({total / 3600:.1f} h; each"
        " training's own fit time, summed over the sessions that ran it). Seconds per epoch include the"
        " validation pass; at one size their spread is the machine's pace changing between sessions.\n\n"
        + markdown_table(["training images", "trainings", "epochs: mean (range)", "s per training", "s per epoch"],
                         rows)  # fmt: skip
    )
