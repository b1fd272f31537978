"""Non-neural baselines on the LeNets' evaluation split: k-nearest neighbours on PCA features and
random forests (scikit-learn Pipelines on the 784 pixels scaled to [0, 1]).

The split is the evaluation protocol's (60/20/20, via :func:`lenet_tf.pipeline.prepare_job`), so
the figures sit beside ``lenet-tf evaluate``'s: validation and test accuracy, per-class
one-vs-rest ROC AUC (from ``predict_proba``), the row-normalised confusion matrix and the
classification report on the held-out test part (:func:`lenet_tf.metrics.heldout_metrics`), plus
fit and predict times. Each grid cell is fitted once per repeat; kNN with PCA is deterministic
(one fit per cell), a random forest gets a new seed every repeat.

Run directory layout::

    config.json                                   what the run is (split, seeds)
    cells/knn_k3_pca5/repeat_01/metrics.json      one fit's figures (written last: present = done)
    cells/rf_trees100_depthNone/repeat_01/metrics.json
    baselines.json / baselines.md                 every fit, mean ± std per cell, grid tables
    baselines.png                                 test-accuracy heat maps of both grids, accuracy against time

Rerunning resumes (finished cells are read back); a larger grid or more repeats adds only the
missing fits. The fully connected network is a Keras model: ``lenet-tf evaluate --model mlp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from .. import options
from ..data import N_CLASSES, N_PIXELS, DigitData
from ..errors import LenetError
from ..metrics import heldout_metrics
from ..pipeline import open_experiment
from ..plots import plot_baseline_grids
from ..rundir import environment, markdown_table, write_json, write_text
from ..seeds import repeat_seed
from ..stats import ci_text, pm, pm_at, summarize
from ..training import accuracy
from .runner import Experiment, ExperimentResult, Item, Progress, Records, run_experiment

FAMILIES = {"knn": "kNN on PCA features", "rf": "random forest"}
CELLS_DIR = "cells"


@dataclass(frozen=True)
class Cell:
    """One point of a grid: ``knn`` with (k, PCA dimensions) or ``rf`` with (trees, max depth)."""

    family: str
    first: int  # k, or the number of trees
    second: int | None  # PCA dimensions, or the maximum depth (None: unlimited)

    @property
    def key(self) -> str:
        if self.family == "knn":
            return f"knn_k{self.first}_pca{self.second}"
        return f"rf_trees{self.first}_depth{self.second}"

    def params(self) -> dict[str, Any]:
        if self.family == "knn":
            return {"k": self.first, "pca": self.second}
        return {"trees": self.first, "max_depth": self.second}

    def label(self) -> str:
        if self.family == "knn":
            pca = "no PCA" if self.second == N_PIXELS else f"PCA {self.second}"
            return f"kNN k={self.first}, {pca}"
        return f"RF {self.first} trees, depth {'∞' if self.second is None else self.second}"

    def pipeline(self, seed: int, n_jobs: int | None) -> Pipeline:
        """The scikit-learn pipeline of this cell (fresh, unfitted)."""
        if self.family == "knn":
            reduce = "passthrough" if self.second == N_PIXELS else PCA(n_components=self.second, random_state=seed)
            return Pipeline([("pca", reduce), ("knn", KNeighborsClassifier(n_neighbors=self.first, n_jobs=n_jobs))])
        forest = RandomForestClassifier(
            n_estimators=self.first, max_depth=self.second, n_jobs=n_jobs, random_state=seed
        )
        return Pipeline([("forest", forest)])

    @property
    def deterministic(self) -> bool:
        """kNN on an exact PCA gives the same fit every time: one repeat is enough."""
        return self.family == "knn"


@dataclass(frozen=True)
class BaselineSpec(options.BaselineOptions):
    """The grids, repeats (random forests only), seeds, split and parallelism of a baselines run."""

    def cells(self) -> list[Cell]:
        """Every grid cell, kNN first, in grid order."""
        knn = [Cell("knn", k, d) for k in self.knn_k for d in self.knn_pca]
        return knn + [Cell("rf", t, d) for t in self.rf_trees for d in self.rf_depth]


def features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) images → float32 (N, 784) pixels in [0, 1], the baselines' input."""
    return (np.asarray(images).reshape(len(images), -1).astype(np.float32) / 255.0).astype(np.float32)


def fit_cell(
    cell: Cell,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    n_jobs: int | None,
) -> dict[str, Any]:
    """Fit one cell's pipeline and measure it: validation accuracy, the test figures of
    :func:`lenet_tf.metrics.heldout_metrics`, fit and (test) predict seconds."""
    model = cell.pipeline(seed, n_jobs)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    test_probabilities = _all_classes(model, model.predict_proba(x_test))
    predict_seconds = time.perf_counter() - started
    val_probabilities = _all_classes(model, model.predict_proba(x_val))
    return {
        "cell": cell.key,
        "family": cell.family,
        "params": cell.params(),
        "seed": seed,
        "n_jobs": n_jobs,
        "val_accuracy": accuracy(val_probabilities, y_val),
        **heldout_metrics(y_test, test_probabilities),
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "test_images": len(y_test),
    }


def _all_classes(model: Pipeline, probabilities: np.ndarray) -> np.ndarray:
    """(N, 10) probabilities even if a class was missing from the training part."""
    full = np.zeros((len(probabilities), N_CLASSES))
    full[:, np.asarray(model.classes_, dtype=int)] = probabilities
    return full


def baselines(
    spec: BaselineSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Fit (or resume) every grid cell into ``out`` and return the results (baselines.json)."""
    started = time.perf_counter()
    job = open_experiment(spec, data=data, source=source, echo=echo, model=False)
    split = job.split
    _check_grids(spec, len(split.y_train))
    config = job.config(kind="baselines", model={"name": "baselines"}, **options.run_record(spec))
    x_train, x_val, x_test = features(split.x_train), features(split.x_val), features(split.x_test)
    cells = {cell.key: cell for cell in spec.cells()}
    plan = [
        Item(f"{CELLS_DIR}/{cell.key}/repeat_{r + 1:02d}", {"cell": cell.key, "repeat": r})
        for cell in cells.values()
        for r in range(1 if cell.deterministic else spec.repeats)
    ]

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        cell = cells[item["cell"]]
        seed = spec.seed if cell.deterministic else repeat_seed(spec.seed, item["repeat"])
        fitted = fit_cell(
            cell, x_train, split.y_train, x_val, split.y_val, x_test, split.y_test, seed=seed, n_jobs=spec.n_jobs
        )
        return fitted | {"repeat": item["repeat"] + 1}

    def write_outputs(records: Records, progress_: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        fits: dict[str, list[dict[str, Any]]] = {}
        for item, record in records:
            fits.setdefault(item["cell"], []).append(record)
        result = {
            "config": config,
            "grids": {"knn_k": list(spec.knn_k), "knn_pca": list(spec.knn_pca), "rf_trees": list(spec.rf_trees),
                      "rf_depth": list(spec.rf_depth)},
            "repeats_requested": spec.repeats,
            "fits_finished": progress_.done,
            "fits_planned": progress_.total,
            "data_source": job.data.source,
            "cells": [_cell_result(cells[key], items) for key, items in fits.items()],
            "invocation_seconds": round(time.perf_counter() - started, 2),
            "environment": environment(),
        }  # fmt: skip
        return result, _write_baselines(result, out, split.sizes())

    experiment = Experiment(
        "baselines", plan, run_item, write_outputs, unit="fit",
        postfix=lambda item, record: {"cell": item["cell"], "val": f"{record['val_accuracy']:.4f}"},
    )  # fmt: skip
    run = run_experiment(
        experiment, out, config, force=force, progress=progress, echo=echo, executor=executor
    )
    _echo_best(run.report["cells"], echo)
    echo(f"baselines: {out}/baselines.json, baselines.md, baselines.png")
    return run


def _echo_best(cells: Sequence[dict[str, Any]], echo: Callable[[str], None]) -> None:
    for family in FAMILIES:
        best = _best(cells, family)
        if best is not None:
            echo(
                f"best {FAMILIES[family]} on validation: {best['label']}, validation accuracy"
                f" {pm(best['summary']['val_accuracy'], 4)}, test accuracy {pm(best['summary']['test_accuracy'], 4)}"
            )


def _check_grids(spec: BaselineSpec, n_train: int) -> None:
    too_many = [k for k in spec.knn_k if k > n_train]
    if too_many:
        raise LenetError(f"--knn-k {too_many[0]} exceeds the {n_train} training images")
    too_wide = [d for d in spec.knn_pca if d != N_PIXELS and d > n_train]
    if too_wide:
        raise LenetError(f"--knn-pca {too_wide[0]} exceeds the {n_train} training images (PCA needs ≤ that)")


def _cell_result(cell: Cell, fits: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cell": cell.key, "family": cell.family, "label": cell.label(), "params": cell.params(),
            "summary": summarize_cell(fits), "fits": fits}  # fmt: skip


def _write_baselines(result: dict[str, Any], out: str | Path, sizes: dict[str, int]) -> dict[str, Path]:
    """baselines.json, baselines.md and baselines.png of ``result``."""
    out = Path(out)
    paths = {"json": out / "baselines.json", "markdown": out / "baselines.md", "figure": out / "baselines.png"}
    write_json(paths["json"], result)
    write_text(paths["markdown"], baselines_markdown(result))
    grids = [g for g in _grids(result) if g["rows"] and g["columns"]]
    timings = [
        (FAMILIES[c["family"]], c["summary"]["fit_seconds"]["mean"] + c["summary"]["predict_seconds"]["mean"],
         c["summary"]["val_accuracy"]["mean"])
        for c in result["cells"]
    ]  # fmt: skip
    title = "Baselines, evaluation split: " + " / ".join(f"{n:,} {part}" for part, n in sizes.items())
    plot_baseline_grids(grids, timings, paths["figure"], title=title, measure="validation accuracy")
    return paths


def summarize_cell(fits: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std and 95 % CI of one cell's fits (per-class for ROC AUC and the confusion matrix)."""
    names = ("val_accuracy", "test_accuracy", "roc_auc", "confusion", "fit_seconds", "predict_seconds")
    return {name: summarize([f[name] for f in fits]) for name in names}


def _best(results: Sequence[dict[str, Any]], family: str) -> dict[str, Any] | None:
    """The family's cell of highest mean validation accuracy: chosen without the test digits,
    which then measure the chosen cell once."""
    cells = [c for c in results if c["family"] == family]
    return max(cells, key=lambda c: c["summary"]["val_accuracy"]["mean"]) if cells else None


def _grids(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Both grids as rows × columns of mean validation accuracy (None where a cell was not run)."""
    by_key = {c["cell"]: c["summary"]["val_accuracy"]["mean"] for c in result["cells"]}
    grids = result["grids"]
    knn = [[by_key.get(Cell("knn", k, d).key) for d in grids["knn_pca"]] for k in grids["knn_k"]]
    rf = [[by_key.get(Cell("rf", t, d).key) for d in grids["rf_depth"]] for t in grids["rf_trees"]]
    return [
        {"name": FAMILIES["knn"], "row_name": "k (neighbours)", "rows": grids["knn_k"],
         "column_name": f"PCA dimensions ({N_PIXELS} = no PCA)", "columns": grids["knn_pca"], "values": knn},
        {"name": FAMILIES["rf"], "row_name": "trees", "rows": grids["rf_trees"],
         "column_name": "max depth (None = unlimited)", "columns": grids["rf_depth"], "values": rf},
    ]  # fmt: skip


def baselines_markdown(result: dict[str, Any]) -> str:
    """Markdown of a baselines.json: both grids and every cell on validation, then the cell of each
    family chosen on validation with its test figures (the only test figures reported)."""
    config = result["config"]
    planned, finished = result.get("fits_planned"), result.get("fits_finished")
    unfinished = "" if planned is None else Progress(finished, planned).note("fits")
    lines = [
        "# Baselines: kNN on PCA features and random forests\n\n",
        (unfinished + ".\n\n") if unfinished else "",
        f"Data: {result['data_source']}; evaluation split {config['split_sizes']} (the LeNets' evaluation"
        " split); pixels scaled to [0, 1]. kNN is deterministic (one fit per cell), random forests are fitted"
        f" {result['repeats_requested']} time(s) with new seeds; mean ± sample std (ddof=1). Each family's cell is"
        " chosen on the validation part; the held-out test part measures only the chosen cells. Times are wall"
        " seconds (fit on the train part, predict_proba on the test part).\n",
    ]
    for grid in _grids(result):
        if not grid["rows"] or not grid["columns"]:
            continue
        headers = [f"{grid['row_name']} \\ {grid['column_name']}", *(str(c) for c in grid["columns"])]
        rows = [
            [r, *("-" if v is None else f"{v:.4f}" for v in values)]
            for r, values in zip(grid["rows"], grid["values"], strict=True)
        ]
        lines.append(f"\n## {grid['name']}: validation accuracy\n\n" + markdown_table(headers, rows))
    rows = [
        [c["label"], pm(c["summary"]["val_accuracy"], 4), f"{c['summary']['fit_seconds']['mean']:.2f}",
         f"{c['summary']['predict_seconds']['mean']:.2f}", c["summary"]["val_accuracy"]["n"]]
        for c in result["cells"]
    ]  # fmt: skip
    headers = ["model", "val", "fit s", "predict s", "fits"]
    lines.append("\n## Every cell (validation, mean ± std over fits)\n\n" + markdown_table(headers, rows))
    best = [b for b in (_best(result["cells"], family) for family in FAMILIES) if b is not None]
    if best:
        lines.append(_best_markdown(best))
    return "".join(lines)


def _best_markdown(best: Sequence[dict[str, Any]]) -> str:
    rows = [
        [b["label"], pm(b["summary"]["val_accuracy"], 4), pm(b["summary"]["test_accuracy"], 4),
         ci_text(b["summary"]["test_accuracy"]), f"{np.mean(b['summary']['roc_auc']['mean']):.4f}",
         f"{b['summary']['fit_seconds']['mean']:.2f}", f"{b['summary']['predict_seconds']['mean']:.2f}"]
        for b in best
    ]  # fmt: skip
    headers = ["model (chosen on val)", "val", "test", "test 95 % CI", "mean ROC AUC", "fit s", "predict s"]
    auc_rows = [[d, *(pm_at(b["summary"]["roc_auc"], d) for b in best)] for d in range(N_CLASSES)]
    return (
        "\n## Best of each family, chosen on validation: its test figures\n\n"
        + markdown_table(headers, rows)
        + "\n### ROC AUC (one vs rest, test)\n\n"
        + markdown_table(["digit", *(b["label"] for b in best)], auc_rows)
    )
