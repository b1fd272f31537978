"""Repeated-training evaluation on the study's evaluation protocol.

The labeled digits are split once 60 / 20 / 20 (25,200 / 8,400 / 8,400 on Kaggle's train.csv);
each repeat trains the model (or a K-member ensemble) with new seeds on the same split and
measures it on the held-out test part: accuracy, per-class one-vs-rest ROC AUC, row-normalised
confusion matrix and classification report. Repeats are summarised as mean ± std and a 95 %
confidence interval. Every finished repeat (and member) is on disk, so a rerun resumes.

Run directory layout::

    config.json                       what the run is
    repeats/repeat_01/members/...     the repeat's trained member(s)
    repeats/repeat_01/metrics.json    the repeat's figures (written last: present = complete)
    repeats/repeat_01/test_probabilities.npy
    evaluation.json / evaluation.md   raw per-repeat figures and their summary
    roc_curves.png, confusion_matrix.png, accuracy_repeats.png, convergence.png
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from .. import options
from ..data import N_CLASSES, DigitData, Split
from ..ensemble import MEMBERS_DIR, Ensemble, train_members
from ..errors import LenetError
from ..metrics import heldout_metrics
from ..models import model_title
from ..pipeline import open_experiment
from ..plots import plot_confusion, plot_convergence, plot_repeat_accuracy, plot_roc_curves
from ..rundir import atomic_write, environment, markdown_table, read_json, write_json, write_text
from ..seeds import repeat_seed
from ..stats import auc_digits, ci_at, ci_text, pm, pm_at, summarize
from ..training import FitResult, accuracy
from .runner import ITEM_FILE, Experiment, ExperimentResult, Item, Progress, Records, read_item, run_experiment

REPEATS_DIR = "repeats"
PROBABILITIES_FILE = "test_probabilities.npy"
FIGURES = ("roc_curves.png", "confusion_matrix.png", "accuracy_repeats.png", "convergence.png")
SETS = ("train", "val", "test")
ENSEMBLE_FIGURES = ("ensemble_train_accuracy", "ensemble_val_accuracy")
REPORT_MEASURES = ("precision", "recall", "f1-score")  # per class, from the classification reports


@dataclass(frozen=True)
class EvaluationSpec(options.EvaluationOptions):
    """What to evaluate: a registered model, K members per repeat, R repeats, seeds, protocol."""


def repeat_metrics(ensemble: Ensemble, results: list[FitResult], split: Split) -> tuple[dict[str, Any], np.ndarray]:
    """Figures of one repeat and its test probabilities.

    Train and validation accuracy are the study's: Keras' training accuracy at the best epoch and
    the best validation accuracy, averaged over an ensemble's members (the reference's ensemble
    figures, 0.975 ± 0.002 and 0.979 ± 0.001, are its single model's means with the spread shrunk by
    averaging ten members). An ensemble also reports its averaged probabilities' accuracy on the
    training and validation images (``ensemble_train_accuracy``, ``ensemble_val_accuracy``).
    """
    if split.x_test is None or split.y_test is None:
        raise LenetError("evaluation needs a split with a held-out test part (the evaluation protocol)")
    test_probabilities = ensemble.predict_proba(split.x_test)
    ensemble_figures = {}
    if len(ensemble) > 1:
        ensemble_figures = {
            "ensemble_train_accuracy": accuracy(ensemble.predict_proba(split.x_train), split.y_train),
            "ensemble_val_accuracy": accuracy(ensemble.predict_proba(split.x_val), split.y_val),
        }
    metrics = {
        "train_accuracy": float(np.mean([r.train_accuracy for r in results])),
        "val_accuracy": float(np.mean([r.val_accuracy for r in results])),
        **ensemble_figures,
        **heldout_metrics(split.y_test, test_probabilities),
        "members": [
            {k: v for k, v in r.to_dict().items() if k not in ("history", "extra")} | {"member": i + 1}
            for i, r in enumerate(results)
        ],
        "seconds": float(sum(r.seconds for r in results)),
    }
    return metrics, test_probabilities


def repeats_averaged(labels: np.ndarray, probabilities: list[np.ndarray], members: int = 1) -> dict[str, Any] | None:
    """The R repeats' models taken together as one ensemble: their test probabilities averaged.

    A free by-product of the repeats (no training): one ensemble of R x K models, so one figure
    without a spread. ``first_k_test_accuracy[k - 1]`` averages the first k repeats. None for R < 2.
    """
    if len(probabilities) < 2:
        return None
    stacked = np.stack(probabilities)
    running = np.cumsum(stacked, axis=0) / np.arange(1, len(stacked) + 1)[:, None, None]
    return {
        "repeats": len(stacked),
        "models": len(stacked) * int(members),
        "test_accuracy": accuracy(running[-1], labels),
        "roc_auc": roc_auc_score(labels, running[-1], multi_class="ovr", average=None).tolist(),
        "first_k_test_accuracy": [accuracy(p, labels) for p in running],
    }


def summarize_repeats(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std and 95 % CI of every per-repeat figure."""
    summary: dict[str, Any] = {f"{s}_accuracy": summarize([r[f"{s}_accuracy"] for r in repeats]) for s in SETS}
    for name in ENSEMBLE_FIGURES:
        if all(name in r for r in repeats):
            summary[name] = summarize([r[name] for r in repeats])
    summary["roc_auc"] = summarize([r["roc_auc"] for r in repeats])
    summary["confusion"] = summarize([r["confusion"] for r in repeats])
    summary["report"] = {
        measure: summarize([[r["report"][str(d)][measure] for d in range(N_CLASSES)] for r in repeats])
        for measure in REPORT_MEASURES
    }
    summary["epochs"] = summarize([np.mean([m["epochs_run"] for m in r["members"]]) for r in repeats])
    summary["seconds_per_repeat"] = summarize([r["seconds"] for r in repeats])
    return summary


def evaluate(
    spec: EvaluationSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Run (or resume) a repeated-training evaluation into ``out`` and return its results."""
    out, started = Path(out), time.perf_counter()
    job = open_experiment(spec, data=data, source=source, echo=echo)
    split = job.split
    config = job.config(kind="evaluation", **options.run_record(spec))
    plan = [Item(f"{REPEATS_DIR}/repeat_{r + 1:02d}", {"repeat": r}) for r in range(spec.repeats)]

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        ensemble, results = train_members(
            job.builder, split, members=spec.members, directory=directory,
            seed=repeat_seed(spec.seed, item["repeat"]), config=spec.train, progress=progress,
        )  # fmt: skip
        metrics, proba = repeat_metrics(ensemble, results, split)
        atomic_write(directory / PROBABILITIES_FILE, lambda tmp: np.save(tmp, proba))
        return metrics | {"repeat": item["repeat"] + 1}

    def write_outputs(records: Records, progress_: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        result = {
            "config": config,
            "repeats_requested": progress_.total,
            "repeats_on_disk": len(list((out / REPEATS_DIR).glob(f"repeat_*/{ITEM_FILE}"))),
            "data_source": job.data.source,
            "summary": summarize_repeats([record for _, record in records]),
            "repeats": [record for _, record in records],
            "repeats_averaged": repeats_averaged(split.y_test, _probabilities(out, records), spec.members),
            "invocation_seconds": round(time.perf_counter() - started, 2),  # this process only
            "environment": environment(),
        }
        return result, _write_evaluation(result, out, records, split, _title(job.model_info["name"], spec.members))

    def on_item(item: Item, record: dict[str, Any], resumed: bool) -> None:
        echo(f"repeat {item['repeat'] + 1}/{spec.repeats}: test accuracy {record['test_accuracy']:.4f}")

    experiment = Experiment("evaluation", plan, run_item, write_outputs, load_item=_read_repeat, on_item=on_item,
                            unit="repeat")  # fmt: skip
    run = run_experiment(
        experiment, out, config, force=force, progress=progress, echo=echo, executor=executor
    )
    on_disk = run["repeats_on_disk"]
    if on_disk > spec.repeats:
        echo(f"note: {on_disk} finished repeats are on disk; this summary uses the first {spec.repeats}"
             f" (--repeats {on_disk} to use them all)")  # fmt: skip
    echo(f"test accuracy {pm(run.summary['test_accuracy'])} over {len(run.items)} repeat(s); results in {out}")
    return run


def _read_repeat(item: Item, directory: Path) -> dict[str, Any] | None:
    """A finished repeat: its figures and its test probabilities both on disk."""
    return read_item(item, directory) if (directory / PROBABILITIES_FILE).is_file() else None


def _probabilities(out: Path, records: Records) -> list[np.ndarray]:
    return [np.load(out / item.path / PROBABILITIES_FILE) for item, _ in records]


def _write_evaluation(result: dict[str, Any], out: Path, records: Records, split: Split, title: str) -> dict[str, Path]:
    """evaluation.json / .md and the figures of ``result`` (its repeats' files read from ``out``)."""
    paths = {name: out / name for name in ("evaluation.json", "evaluation.md", *FIGURES)}
    write_json(paths["evaluation.json"], result)
    write_text(paths["evaluation.md"], evaluation_markdown(result))
    summary, repeats = result["summary"], result["repeats"]
    members = result["config"]["members"]
    histories = [
        read_json(path)["history"]
        for item, _ in records
        for path in sorted((out / item.path / MEMBERS_DIR).glob("member_*.json"))
    ]
    plot_roc_curves(split.y_test, _probabilities(out, records), summary["roc_auc"], paths["roc_curves.png"],
                    title=title, digits=auc_digits(members))  # fmt: skip
    plot_confusion(summary["confusion"], paths["confusion_matrix.png"], title=title)
    plot_repeat_accuracy(repeats, paths["accuracy_repeats.png"], title=title)
    plot_convergence(histories, paths["convergence.png"], title=title, repeats=len(repeats))
    return paths


def _title(model: str, members: int) -> str:
    return model_title(model) + (f", ensemble of {members}" if members > 1 else "")


def _repeats_markdown(repeats: list[dict[str, Any]]) -> str:
    """The per-repeat table and the training time of them all.

    The total adds the repeats' own seconds: a run resumed over several sessions took that much
    training, whatever each session's process measured.
    """
    rows = [
        [r["repeat"], f"{r['train_accuracy']:.4f}", f"{r['val_accuracy']:.4f}", f"{r['test_accuracy']:.4f}",
         "/".join(str(m["epochs_run"]) for m in r["members"]), f"{r['seconds']:.0f}"]
        for r in repeats
    ]  # fmt: skip
    epochs = [sum(m["epochs_run"] for m in r["members"]) for r in repeats]
    pace = [r["seconds"] / e for r, e in zip(repeats, epochs, strict=True) if e]
    total = (
        f"\n\nTraining time: {sum(r['seconds'] for r in repeats):,.0f} s over the {len(repeats)} repeat(s),"
        f" {sum(epochs)} epochs" + (f", {min(pace):.1f}–{max(pace):.1f} s per epoch" if pace else "") + "."
    )
    return "\n## Repeats\n\n" + markdown_table(["repeat", "train", "val", "test", "epochs", "seconds"], rows) + total


def evaluation_markdown(result: dict[str, Any]) -> str:
    """Markdown tables of an evaluation.json."""
    config, summary = result["config"], result["summary"]
    members = config["members"]
    digits = auc_digits(members)
    title = _title(config["model"]["name"], members)
    sizes = " / ".join(f"{v:,} {k}" for k, v in config["split_sizes"].items())
    lines = [f"# Evaluation: {title}\n\n", f"Data: {result['data_source']}; split {sizes}; "]
    n = summary["test_accuracy"]["n"]
    on_disk = result.get("repeats_on_disk", n)
    more = f" ({on_disk} finished on disk; `--repeats {on_disk}` summarises them all)" if on_disk > n else ""
    requested = result.get("repeats_requested", n)
    if n < requested:
        more += f" — **{n} of {requested} repeats finished so far**; rerun the same command to continue"
    lines.append(f"{n} repeats{more}; std is the sample std (ddof=1); CI is 95 % (Student t).\n\n")
    if members > 1:
        lines.append(
            "Train and val are the members' own figures (Keras' training accuracy at the best epoch, best"
            " validation accuracy) averaged over the members, as the reference reports its ensemble;"
            " the averaged probabilities' accuracy on those images is in the last two rows.\n\n"
        )
    rows = []
    for name in (*(f"{s}_accuracy" for s in SETS), *ENSEMBLE_FIGURES):
        if name in summary:
            label = name.removesuffix("_accuracy").replace("ensemble_", "") + (
                " (averaged probabilities)" if name.startswith("ensemble_") else ""
            )
            rows.append([label, pm(summary[name]), ci_text(summary[name])])
    lines.append(markdown_table(["accuracy", "mean ± std", "95 % CI"], rows))
    auc = summary["roc_auc"]
    auc_rows = [[d, pm_at(auc, d, digits), ci_at(auc, d, digits)] for d in range(N_CLASSES)]
    lines.append("\n## ROC AUC (one vs rest, test)\n\n" + markdown_table(["digit", "mean ± std", "95 % CI"], auc_rows))
    report = summary.get("report")
    if report:
        report_rows = [[d, *(pm_at(report[m], d, 4) for m in REPORT_MEASURES)] for d in range(N_CLASSES)]
        lines.append(
            "\n## Classification report (test, mean ± std over repeats)\n\n"
            + markdown_table(["digit", *REPORT_MEASURES], report_rows)
        )
    lines.append(_repeats_markdown(result["repeats"]))
    averaged = result.get("repeats_averaged")
    if averaged:
        lines.append(
            f"\n## The repeats' models averaged\n\nThe {averaged['models']} trained models of the "
            f"{averaged['repeats']} repeats as one ensemble (averaged test probabilities; no training, one "
            f"figure, so no spread): test accuracy **{averaged['test_accuracy']:.4f}**.\n\n"
        )
        curve = averaged["first_k_test_accuracy"]
        ks = [str(k) for k in range(1, len(curve) + 1)]
        lines.append(markdown_table(["first k repeats", *ks], [["test accuracy", *(f"{a:.4f}" for a in curve)]]))
        digits_row = [["ROC AUC", *(f"{a:.5f}" for a in averaged["roc_auc"])]]
        lines.append("\n" + markdown_table(["digit", *(str(d) for d in range(N_CLASSES))], digits_row))
    return "".join(lines)
