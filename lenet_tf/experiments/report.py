"""Comparison report: finished studies beside the reference figures.

Evaluations (``evaluation.json``) beside the reference study's published means and standard
deviations; learning curves (``learning_curve.json``) with the reading the reference gives (where
train and test accuracy meet, whether more data still helps), computed from the figures; classic
LeNet-5 runs (a train/ensemble ``metrics.json`` of the ``classic`` model) beside the ≥ 0.99 of
LeCun et al. (1998) and the PyTorch reproduction in the reference material.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..errors import LenetError
from ..options import OUTPUT_L2_MODELS, complete_train_record
from ..rundir import markdown_table, read_json, write_text
from ..stats import auc_digits, pm, pm_at, summarize
from ..training import TrainConfig

# Reference study (Demichelis 2025): mean ± std over 10 repeated trainings, 25,200/8,400/8,400 split.
REFERENCE: dict[tuple[str, int], dict[str, Any]] = {
    ("standard", 1): {
        "train": (0.967, 0.007), "val": (0.968, 0.005), "test": (0.965, 0.005),
        "roc_auc": [(0.9997, 0.0001), (0.9996, 0.0002), (0.9982, 0.0006), (0.9982, 0.0005), (0.9991, 0.0003),
                    (0.9985, 0.0007), (0.9996, 0.0002), (0.9996, 0.0001), (0.9982, 0.0006), (0.9976, 0.0007)],
    },
    ("optimized", 1): {
        "train": (0.975, 0.005), "val": (0.979, 0.004), "test": (0.978, 0.003),
        "roc_auc": [(0.9999, 0.0001), (0.9997, 0.0002), (0.9993, 0.0003), (0.9991, 0.0004), (0.9996, 0.0002),
                    (0.9996, 0.0001), (0.9998, 0.0002), (0.9998, 0.0001), (0.9995, 0.0002), (0.9985, 0.0005)],
    },
    ("optimized", 10): {
        "train": (0.975, 0.002), "val": (0.979, 0.001), "test": (0.985, 0.001),
        "roc_auc": [(0.99998, 0.00001), (0.99991, 0.00004), (0.99977, 0.00005), (0.9995, 0.00008),
                    (0.99986, 0.00003), (0.99986, 0.00003), (0.99995, 0.00001), (0.99995, 0.00001),
                    (0.99976, 0.00004), (0.99924, 0.00013)],
    },
}  # fmt: skip

# Registered models that are the reference's own under another reading of its text (pooling strided
# by its window, models.strided_lenet): set beside the figures of the model they read.
REFERENCE_MODEL = {"standard-strided": "standard", "optimized-strided": "optimized"}

REFERENCE_SPLIT = {"train": 25200, "val": 8400, "test": 8400}
# LeCun et al. (1998) and the PyTorch reproduction in the reference material: 0.991 on MNIST's
# 10,000 test digits after 20 epochs (SGD 0.01, momentum 0.9, batch 64) on its 60,000 training digits.
CLASSIC_REFERENCE = 0.99
# Training fields that set the pace, not the arithmetic: several batches per compiled call run the
# same updates on the same batches in the same order, equal within float rounding (test_flagship
# checks two epochs' losses agree to a relative 1e-4); callbacks still act once per epoch.
PACE_ONLY_FIELDS = ("steps_per_execution", "tensorboard")  # logging changes no update either


def protocol_differences(config: dict[str, Any]) -> list[str]:
    """How a run's configuration departs from the reference protocol (empty: it follows it), so
    the reference's figures are set beside comparable runs only."""
    differences = []
    sizes = config.get("split_sizes")
    if sizes != REFERENCE_SPLIT:
        differences.append("split " + ("/".join(str(v) for v in sizes.values()) if sizes else "unknown"))
    reference_train = TrainConfig().to_dict()
    train = complete_train_record(config.get("train") or {})  # a run recorded before a field was added
    changed = sorted(set(train) | set(reference_train))
    changed = [k for k in changed if train.get(k) != reference_train.get(k) and k not in PACE_ONLY_FIELDS]
    if changed:
        differences.append("training " + ", ".join(f"{k}={train.get(k)}" for k in changed))
    model = config.get("model") or {}
    if model.get("name") == "optimized" and model.get("hparams_source") != "preset":
        differences.append(f"hyperparameters from {model.get('hparams_source')}")
    return differences


def model_reading(config: dict[str, Any]) -> str:
    """How a run's model met the reference's code, which feeds raw 0–255 pixels and puts the dense
    L2 on the output layer too: ``raw, output L2``. Runs recorded before lenet_tf 0.2.0 (no
    ``input_scale``) divided by 255 and, for the optimized LeNets, left the output layer without L2."""
    model = config.get("model") or {}
    before = "input_scale" not in model
    scale = "÷255" if before or model["input_scale"] == "unit" else "raw"
    if model.get("name") not in OUTPUT_L2_MODELS:
        return scale + (" (before 0.2.0)" if before else "")
    l2 = "output L2" if model.get("output_l2") else "no output L2"
    return f"{scale}, {l2}" + (" (before 0.2.0)" if before else "")


def find_evaluations(results: str | Path, name: str = "evaluation.json") -> list[Path]:
    """Every ``name`` (a study's report file) under ``results``."""
    results = Path(results)
    if not results.is_dir():
        raise LenetError(f"{results}: no such directory")
    return sorted(results.rglob(name))


def find_classic_runs(results: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The finished train/ensemble runs of the classic LeNet-5 under ``results`` (their metrics.json)."""
    runs = []
    for path in find_evaluations(results, "metrics.json"):
        metrics = read_json(path)
        if isinstance(metrics, dict) and (metrics.get("config") or {}).get("model", {}).get("name") == "classic":
            runs.append((path, metrics))
    return runs


def _label(model: str, members: int) -> str:
    return f"{model}" + (f" × {members} (ensemble)" if members > 1 else "")


def _reference_text(reference: tuple[float, float] | None, digits: int = 3) -> str:
    return f"{reference[0]:.{digits}f} ± {reference[1]:.{digits}f}" if reference else "—"


def sd_difference(ours: float, reference: tuple[float, float] | None) -> str:
    """``(ours − reference mean) / reference SD``, signed, one decimal: how many of the reference's
    standard deviations our figure lies from its mean (``—`` without a reference figure)."""
    if not reference or not reference[1]:
        return "—"
    return f"{(ours - reference[0]) / reference[1]:+.1f}"


def _accuracy_row(label: str, reading: str, run: str, result: dict[str, Any], ref: dict[str, Any] | None) -> list[Any]:
    """One evaluation's row: per set our mean ± std, the reference's, the difference in its SDs."""
    summary = result["summary"]
    ours = {s: summary[f"{s}_accuracy"] for s in ("train", "val", "test")}
    n, requested = ours["test"]["n"], result.get("repeats_requested", ours["test"]["n"])
    row: list[Any] = [label, reading, n if n >= requested else f"{n} of {requested} (unfinished)"]
    for s in ("train", "val", "test"):
        reference = ref[s] if ref else None
        row += [pm(ours[s], 3), _reference_text(reference), sd_difference(ours[s]["mean"], reference)]
    return [*row, run]


def _averaged_row(
    model: str, reading: str, run: str, averaged: dict[str, Any], ens_ref: dict[str, Any] | None
) -> list[Any]:
    """The repeats' models averaged as one ensemble, beside the reference's ensemble of as many."""
    reference = ens_ref["test"] if ens_ref else None
    return [
        f"{model}: the {averaged['models']} models of the repeats averaged", reading, "1 (no spread)",
        "—", "—", "—", "—", "—", "—", f"{averaged['test_accuracy']:.4f}", _reference_text(reference),
        sd_difference(averaged["test_accuracy"], reference), run,
    ]  # fmt: skip


def _auc_rows(
    label: str, reading: str, run: str, auc: dict[str, Any], ref: dict[str, Any] | None, digits: int
) -> list[list[Any]]:
    """Per digit: ours, the reference's, the difference in its SDs. Each row names its reading and
    run, as the accuracy rows do: two runs of one model were otherwise told apart by nothing."""
    rows = []
    for digit in range(len(auc["mean"])):
        reference = ref["roc_auc"][digit] if ref else None
        rows.append([
            label, reading, digit, pm_at(auc, digit, digits), _reference_text(reference, digits),
            sd_difference(auc["mean"][digit], reference), run,
        ])  # fmt: skip
    return rows


def compare_markdown(
    evaluations: list[tuple[Path, dict[str, Any]]],
    curves: list[tuple[Path, dict[str, Any]]] = (),
    classic: list[tuple[Path, dict[str, Any]]] = (),
) -> str:
    """One table of accuracies (ours beside the reference) and one of per-class ROC AUC, each
    figure with its difference from the reference's in units of the reference's standard deviation."""
    rows, auc_rows, notes = [], [], []
    for path, result in evaluations:
        config = result["config"]
        model, members = config["model"]["name"], config["members"]
        differences = protocol_differences(config)
        label = _label(model, members)
        if differences:  # not the reference's protocol: its figures would mislead beside this run
            notes.append(f"`{path.parent}` ({label}): not the reference protocol ({'; '.join(differences)}),"
                         " so no reference figures beside it.")  # fmt: skip
            label += f" [{len(notes)}]"
        reference_model = REFERENCE_MODEL.get(model, model)
        if reference_model != model and not differences:
            notes.append(f"`{path.parent}` ({label}): the {reference_model} LeNet with each pooling strided by its"
                         f" window, beside the reference's {reference_model} figures.")  # fmt: skip
            label += f" [{len(notes)}]"
        ref = None if differences else REFERENCE.get((reference_model, members))
        reading, run = model_reading(config), f"`{path.parent}`"  # every row of this evaluation names both
        rows.append(_accuracy_row(label, reading, run, result, ref))
        averaged = result.get("repeats_averaged")
        if averaged:
            ens_ref = None if differences or members != 1 else REFERENCE.get((reference_model, averaged["models"]))
            rows.append(_averaged_row(model, reading, run, averaged, ens_ref))
        auc_rows += _auc_rows(label, reading, run, result["summary"]["roc_auc"], ref, auc_digits(members))
    headers = ["model", "input, output layer", "repeats"]
    headers += [f"{s} ({who})" for s in ("train", "val", "test") for who in ("ours", "ref", "Δ ref SD")]
    evaluated = (
        "## Repeated evaluations\n\nAccuracy, mean ± std over repeated trainings (reference: 10 repeats,"
        " 25,200 / 8,400 / 8,400 split). Δ ref SD: (our mean − the reference's mean) / the reference's standard"
        " deviation. Our SDs are sample SDs (ddof 1); the reference's are population SDs (`np.std`, ddof 0),"
        " √(9/10) ≈ 0.95 of a sample SD at 10 repeats. Input, output layer: how the model met the reference's"
        " code, which feeds raw 0–255 pixels and puts the dense L2 on the output layer too (`raw, output L2`);"
        " runs recorded before lenet_tf 0.2.0 divided by 255 and left the output layer without L2.\n\n"
        + markdown_table([*headers, "run"], rows)
        + "".join(f"\n[{i + 1}] {note}\n" for i, note in enumerate(notes))
        + "\n## Per-class ROC AUC (one vs rest, held-out test)\n\n"
        + markdown_table(["model", "input, output layer", "digit", "ours", "reference", "Δ ref SD", "run"], auc_rows)
        if rows
        else "## Repeated evaluations\n\nNone finished yet.\n"
    )
    return (
        f"{REPORT_MARK}\n# Comparison with the reference study\n\n"
        + evaluated
        + "".join(curve_markdown(path, result) for path, result in curves)
        + classic_markdown(classic)
    )


# The first line of every report compare writes (an HTML comment: hidden when rendered). An existing
# --output without it is someone else's file, which compare never replaces without ``force``.
REPORT_MARK = "<!-- written by `lenet-tf compare`; rerunning it replaces this file -->"


def compare(results: str | Path, output: str | Path, *, force: bool = False) -> Path:
    """Collect the evaluations under ``results`` into a Markdown report at ``output``.

    An existing ``output`` is replaced only when compare wrote it (its first line is
    :data:`REPORT_MARK`) or with ``force``; identical content is left as it is.
    """
    output = Path(output)
    if output.is_dir():
        raise LenetError(f"{output}: is a directory, not a report file")
    if output.exists() and not force and not _written_by_compare(output):
        raise LenetError(f"{output} already exists and compare did not write it; pass --force to replace it")
    evaluations = [(p, read_json(p)) for p in find_evaluations(results)]
    curves = [(p, read_json(p)) for p in find_evaluations(results, "learning_curve.json")]
    classic = find_classic_runs(results)
    if not (evaluations or curves or classic):
        raise LenetError(
            f"{results}: no finished study (evaluation.json, learning_curve.json or a classic run's metrics.json)"
        )
    _check_each(evaluations, curves, classic)
    text = compare_markdown(evaluations, curves, classic)
    if output.is_file() and output.read_text(encoding="utf-8", errors="replace") == text:
        return output
    return write_text(output, text)


def _check_each(evaluations: list, curves: list, classic: list) -> None:
    """Render every study alone first, so a damaged or foreign report file is named in one line
    instead of ending the whole report in a traceback (or in a wrong number beside the reference)."""
    for kind, entries in (("evaluations", evaluations), ("curves", curves), ("classic", classic)):
        for path, result in entries:
            try:
                compare_markdown(**({"evaluations": []} | {kind: [(path, result)]}))
                if kind == "evaluations":
                    _check_figures(result)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as exc:
                raise LenetError(f"{path}: not a report compare can read ({type(exc).__name__}: "
                                 f"{str(exc)[:60]}); rerun the study that wrote it, or move it away") from exc


def _check_figures(result: dict[str, Any]) -> None:
    """Accuracies and ROC AUCs are shares in [0, 1]: anything else would be printed as a result."""
    summary = result["summary"]
    for name in ("train_accuracy", "val_accuracy", "test_accuracy", "roc_auc"):
        for value in np.ravel(np.asarray(summary[name]["mean"], dtype=float)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} {value!r} is not a share in [0, 1]")


def _written_by_compare(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n") == REPORT_MARK
    except OSError:
        return False


def grouped_trend(sizes: list[int], means: list[float], stds: list[float], counts: list[int]) -> dict[str, float]:
    """The least-squares line through every training's test accuracy (``counts[i]`` trainings at
    ``sizes[i]``, summarised by their mean and sample std): the same slope, standard error and
    two-sided p-value as ``scipy.stats.linregress`` on the individual points, recovered exactly from
    the summaries, so the test weighs the scatter between repeats, not only a few sizes' means."""
    x, y, s = (np.asarray(v, dtype=float) for v in (sizes, means, stds))
    n = np.asarray(counts, dtype=float)
    x_bar, y_bar = (n * x).sum() / n.sum(), (n * y).sum() / n.sum()
    sxx = (n * (x - x_bar) ** 2).sum()
    slope = (n * (x - x_bar) * (y - y_bar)).sum() / sxx
    fitted = y_bar + slope * (x - x_bar)
    residual = ((n - 1) * s**2).sum() + (n * (y - fitted) ** 2).sum()
    dof = int(n.sum()) - 2
    stderr = math.sqrt(residual / dof / sxx) if dof > 0 else math.nan
    if dof <= 0:
        pvalue = math.nan
    elif stderr > 0:
        pvalue = 2 * stats.t.sf(abs(slope) / stderr, dof)
    else:  # every training exactly on the line: any slope is certain
        pvalue = 0.0 if slope != 0 else 1.0
    return {"slope": float(slope), "stderr": stderr, "pvalue": float(pvalue), "trainings": int(n.sum())}


def curve_reading(curve: dict[str, Any]) -> str:
    """The reference's reading of a learning curve, from the figures: the train−test gap at the
    smallest and largest size, and whether test accuracy still rises at the large end (then more
    data would still help): by a straight line through every training of the upper half of the
    sizes (at least the last two), whose slope must be positive with p < 0.05."""
    sizes, train, test = curve["sizes"], curve["train_mean"], curve["test_mean"]
    gaps = [a - b for a, b in zip(train, test, strict=True)]
    text = (f"The train−test gap is {gaps[0]:.3f} at {sizes[0]:,} training images and {gaps[-1]:.3f} at"
            f" {sizes[-1]:,}")  # fmt: skip
    meet = next((size for size, gap in zip(sizes, gaps, strict=True) if gap < 0.01), None)
    text += f"; the curves meet (gap < 0.01) from {meet:,} images" if meet else "; they do not meet (gap < 0.01) here"
    if len(sizes) < 2:
        return text + ".\n"
    upper = min(len(sizes) // 2, len(sizes) - 2)
    fit = grouped_trend(sizes[upper:], test[upper:], curve["test_std"][upper:], curve["counts"][upper:])
    span = f". Test accuracy from {sizes[upper]:,} to {sizes[-1]:,} images"
    if math.isnan(fit["pvalue"]):
        return text + f"{span}: {fit['trainings']} trainings, too few to test a trend.\n"
    rising = fit["slope"] > 0 and fit["pvalue"] < 0.05
    verdict = "still rising: more data would help" if rising else "no significant rise"
    return text + (f"{span} (a straight line through its {fit['trainings']} trainings at {len(sizes) - upper}"
                   f" sizes): {1000 * fit['slope']:+.4f} per 1,000 images, standard error"
                   f" {1000 * fit['stderr']:.4f}, p = {fit['pvalue']:.2g}; {verdict}.\n")  # fmt: skip


def curve_markdown(path: Path, result: dict[str, Any]) -> str:
    """A learning curve's table (train and test accuracy per size) and its reading."""
    curve = result["curve"]
    model = result["config"]["model"]["name"]
    rows = [
        [size, n, pm({"n": n, "mean": curve["train_mean"][i], "std": curve["train_std"][i]}, 4),
         pm({"n": n, "mean": curve["test_mean"][i], "std": curve["test_std"][i]}, 4)]
        for i, (size, n) in enumerate(zip(curve["sizes"], curve["counts"], strict=True))
    ]  # fmt: skip
    requested = result.get("repeats_requested", curve["repeats"])
    return (
        f"\n## Learning curve: {model} (`{path.parent}`)\n\n"
        f"{curve['repeats']} of {requested} repeats per size (the reference: 20), mean ± std; the reference"
        " publishes the curve as a figure only, without numbers.\n\n"
        + markdown_table(["training images", "repeats", "train accuracy", "test accuracy"], rows)
        + "\n" + curve_reading(curve)
    )


def classic_markdown(runs: list[tuple[Path, dict[str, Any]]]) -> str:
    """The classic LeNet-5 runs: their members' validation accuracy (each member one training)
    beside the reference's ≥ 0.99."""
    if not runs:
        return ""
    rows = []
    for path, metrics in runs:
        config = metrics["config"]
        val = summarize(np.asarray(metrics["member_val_accuracy"]))
        train = config.get("train") or {}
        protocol = (f"{config.get('protocol')} split {'/'.join(str(v) for v in config['split_sizes'].values())},"
                    f" {train.get('epochs')} epochs, batch {train.get('batch_size')},"
                    f" {'last' if train.get('restore_best') is False else 'best-epoch'} weights")  # fmt: skip
        rows.append([protocol, val["n"], pm(val, 4), f"≥ {CLASSIC_REFERENCE}",
                     f"{val['mean'] - CLASSIC_REFERENCE:+.4f}", f"`{path.parent}`"])  # fmt: skip
    return (
        "\n## Classic LeNet-5 (SGD 0.01, momentum 0.9)\n\n"
        "Validation accuracy of each trained model (mean ± std over the members, each one training);"
        " the reference: ≥ 0.99 on MNIST's 10,000 test digits after training on 60,000.\n\n"
        + markdown_table(["protocol", "trainings", "ours", "reference", "difference", "run"], rows)
    )
