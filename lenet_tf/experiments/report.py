"""Comparison report: finished evaluations beside the reference study's published figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LenetError
from ..rundir import markdown_table, read_json, write_text
from ..stats import auc_digits, pm, pm_at
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


REFERENCE_SPLIT = {"train": 25200, "val": 8400, "test": 8400}


def protocol_differences(config: dict[str, Any]) -> list[str]:
    """How a run's configuration departs from the reference protocol (empty: it follows it), so
    the reference's figures are set beside comparable runs only."""
    differences = []
    sizes = config.get("split_sizes")
    if sizes != REFERENCE_SPLIT:
        differences.append("split " + ("/".join(str(v) for v in sizes.values()) if sizes else "unknown"))
    reference_train = TrainConfig().to_dict()
    train = config.get("train") or {}
    changed = sorted(set(train) | set(reference_train))
    changed = [k for k in changed if train.get(k) != reference_train.get(k)]
    if changed:
        differences.append("training " + ", ".join(f"{k}={train.get(k)}" for k in changed))
    model = config.get("model") or {}
    if model.get("name") == "optimized" and model.get("hparams_source") != "preset":
        differences.append(f"hyperparameters from {model.get('hparams_source')}")
    return differences


def find_evaluations(results: str | Path) -> list[Path]:
    """Every ``evaluation.json`` under ``results``."""
    results = Path(results)
    if not results.is_dir():
        raise LenetError(f"{results}: no such directory")
    return sorted(results.rglob("evaluation.json"))


def _label(model: str, members: int) -> str:
    return f"{model}" + (f" × {members} (ensemble)" if members > 1 else "")


def compare_markdown(evaluations: list[tuple[Path, dict[str, Any]]]) -> str:
    """One table of accuracies (ours beside the reference) and one of per-class ROC AUC."""
    rows, auc_rows, notes = [], [], []
    for path, result in evaluations:
        config, summary = result["config"], result["summary"]
        model, members = config["model"]["name"], config["members"]
        differences = protocol_differences(config)
        label = _label(model, members)
        if differences:  # not the reference's protocol: its figures would mislead beside this run
            notes.append(f"`{path.parent}` ({label}): not the reference protocol ({'; '.join(differences)}),"
                         " so no reference figures beside it.")  # fmt: skip
            label += f" [{len(notes)}]"
        ref = None if differences else REFERENCE.get((model, members))
        digits = auc_digits(members)
        ours = {s: summary[f"{s}_accuracy"] for s in ("train", "val", "test")}
        n, requested = ours["test"]["n"], result.get("repeats_requested", ours["test"]["n"])
        row = [label, n if n >= requested else f"{n} of {requested} (unfinished)"]
        for s in ("train", "val", "test"):
            row.append(pm(ours[s], 3))
            row.append(f"{ref[s][0]:.3f} ± {ref[s][1]:.3f}" if ref else "—")
        row.append(f"`{path.parent}`")
        rows.append(row)
        averaged = result.get("repeats_averaged")
        if averaged:
            # The repeats' models as one ensemble: beside the reference's ensemble of as many models.
            ens_ref = None if differences else REFERENCE.get((model, averaged["models"]))
            ens_test = f"{ens_ref['test'][0]:.3f} ± {ens_ref['test'][1]:.3f}" if ens_ref and members == 1 else "—"
            rows.append([
                f"{model}: the {averaged['models']} models of the repeats averaged", "1 (no spread)",
                "—", "—", "—", "—", f"{averaged['test_accuracy']:.4f}", ens_test, f"`{path.parent}`",
            ])  # fmt: skip
        auc = summary["roc_auc"]
        for digit in range(len(auc["mean"])):
            reference = f"{ref['roc_auc'][digit][0]:.{digits}f} ± {ref['roc_auc'][digit][1]:.{digits}f}" if ref else "—"
            auc_rows.append([
                label, digit,
                pm_at(auc, digit, digits), reference,
            ])  # fmt: skip
    headers = ["model", "repeats", "train (ours)", "train (ref)", "val (ours)", "val (ref)", "test (ours)",
               "test (ref)", "run"]  # fmt: skip
    return (
        "# Comparison with the reference study\n\n"
        "Accuracy, mean ± std over repeated trainings (reference: 10 repeats, 25,200 / 8,400 / 8,400 split).\n\n"
        + markdown_table(headers, rows)
        + "".join(f"\n[{i + 1}] {note}\n" for i, note in enumerate(notes))
        + "\n## Per-class ROC AUC (one vs rest, held-out test)\n\n"
        + markdown_table(["model", "digit", "ours", "reference"], auc_rows)
    )


def compare(results: str | Path, output: str | Path) -> Path:
    """Collect the evaluations under ``results`` into a Markdown report at ``output``."""
    paths = find_evaluations(results)
    if not paths:
        raise LenetError(f"{results}: no finished evaluation (evaluation.json) found; run `lenet-tf evaluate` first")
    return write_text(output, compare_markdown([(p, read_json(p)) for p in paths]))
