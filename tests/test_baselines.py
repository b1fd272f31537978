from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from lenet_tf import options
from lenet_tf.cli import main
from lenet_tf.data import split_data
from lenet_tf.errors import LenetError
from lenet_tf.experiments.baselines import BaselineSpec, Cell, baselines, baselines_markdown, features

SMALL = BaselineSpec(knn_k=(3,), knn_pca=(5, 784), rf_trees=(5,), rf_depth=(4, None), repeats=2, n_jobs=1)


def test_baselines_grid_figures_are_consistent_and_resume(tiny, tmp_path: Path) -> None:
    out = tmp_path / "base"
    result = baselines(SMALL, out, data=tiny, progress=False, echo=lambda _: None)
    cells = {c["cell"]: c for c in result["cells"]}
    assert list(cells) == ["knn_k3_pca5", "knn_k3_pca784", "rf_trees5_depth4", "rf_trees5_depthNone"]
    assert [len(c["fits"]) for c in cells.values()] == [1, 1, 2, 2]  # kNN is deterministic: one fit

    # the same split and figures as a hand-made scikit-learn fit
    split = split_data(tiny, "evaluation", seed=0)
    x_train, x_test = features(split.x_train), features(split.x_test)
    knn = KNeighborsClassifier(n_neighbors=3).fit(x_train, split.y_train)
    assert cells["knn_k3_pca784"]["fits"][0]["test_accuracy"] == pytest.approx(knn.score(x_test, split.y_test))
    pca = PCA(n_components=5, random_state=0).fit(x_train)
    reduced = KNeighborsClassifier(n_neighbors=3).fit(pca.transform(x_train), split.y_train)
    expected = reduced.score(pca.transform(x_test), split.y_test)
    assert cells["knn_k3_pca5"]["fits"][0]["test_accuracy"] == pytest.approx(expected)

    forest = cells["rf_trees5_depthNone"]
    tests = [f["test_accuracy"] for f in forest["fits"]]
    assert forest["fits"][0]["seed"] != forest["fits"][1]["seed"]
    assert forest["summary"]["test_accuracy"]["mean"] == pytest.approx(np.mean(tests))
    assert forest["summary"]["test_accuracy"]["std"] == pytest.approx(np.std(tests, ddof=1))
    for fit in forest["fits"] + cells["knn_k3_pca5"]["fits"]:
        assert len(fit["roc_auc"]) == 10 and all(0.5 <= a <= 1 for a in fit["roc_auc"])
        confusion = np.asarray(fit["confusion"])
        np.testing.assert_allclose(confusion.sum(axis=1), 1.0)
        assert fit["fit_seconds"] > 0 and fit["predict_seconds"] > 0 and fit["test_images"] == 120

    markdown = (out / "baselines.md").read_text()
    assert f"| 3 | {cells['knn_k3_pca5']['summary']['val_accuracy']['mean']:.4f} |" in markdown
    assert "| trees \\ max depth (None = unlimited) | 4 | None |" in markdown
    vals = [f["val_accuracy"] for f in forest["fits"]]
    assert f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}" in markdown
    assert (out / "baselines.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "baselines.json").read_text())["grids"]["rf_depth"] == [4, None]

    done = out / "cells" / "knn_k3_pca5" / "repeat_01" / "metrics.json"
    stamp = done.stat().st_mtime_ns
    messages: list[str] = []
    wider = BaselineSpec(knn_k=(3, 5), knn_pca=(5, 784), rf_trees=(5,), rf_depth=(4, None), repeats=2, n_jobs=1)
    grown = baselines(wider, out, data=tiny, progress=False, echo=messages.append)
    assert any(m.startswith("resuming the baselines") for m in messages)
    assert done.stat().st_mtime_ns == stamp  # finished cells are read back, not refitted
    assert len(grown["cells"]) == 6
    assert grown["cells"][0]["fits"] == result["cells"][0]["fits"]

    with pytest.raises(LenetError, match=r"different configuration \(seed: 0 there, 1 now\)"):
        baselines(BaselineSpec(knn_k=(3,), seed=1), out, data=tiny, progress=False, echo=lambda _: None)


def test_cell_pipelines() -> None:
    knn = Cell("knn", 10, 784).pipeline(seed=0, n_jobs=1)
    assert knn.named_steps["pca"] == "passthrough" and knn.named_steps["knn"].n_neighbors == 10
    assert Cell("knn", 3, 50).pipeline(seed=0, n_jobs=1).named_steps["pca"].n_components == 50
    forest = Cell("rf", 200, None).pipeline(seed=7, n_jobs=2).named_steps["forest"]
    assert (forest.n_estimators, forest.max_depth, forest.random_state, forest.n_jobs) == (200, None, 7, 2)
    assert Cell("rf", 10, 20).label() == "RF 10 trees, depth 20" and Cell("knn", 3, 784).label() == "kNN k=3, no PCA"


def test_default_grids_are_the_issue_grids() -> None:
    cells = BaselineSpec().cells()
    assert len(cells) == 4 * 5 + 4 * 3
    assert {(c.first, c.second) for c in cells if c.family == "knn"} == {
        (k, d) for k in (3, 10, 50, 100) for d in (5, 25, 50, 100, 784)
    }
    assert {(c.first, c.second) for c in cells if c.family == "rf"} == {
        (t, d) for t in (10, 100, 200, 400) for d in (10, 20, None)
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (BaselineSpec(knn_k=(0,)), "knn_k: 0 is not an integer ≥ 1"),
        (BaselineSpec(knn_pca=(785,)), r"knn_pca: 785 is not an integer in \[1, 784\]"),
        (BaselineSpec(rf_trees=()), "rf_trees: give at least one value"),
        (BaselineSpec(rf_depth=(0, None)), "rf_depth: 0 is not an integer ≥ 1"),
        (BaselineSpec(repeats=0), "repeats must be an integer ≥ 1"),
    ],
)
def test_bad_grids(spec: BaselineSpec, message: str) -> None:
    with pytest.raises(LenetError, match=message):
        spec.validate()


def test_grid_larger_than_the_data(tiny, tmp_path: Path) -> None:
    with pytest.raises(LenetError, match="--knn-k 1000 exceeds the 360 training images"):
        baselines(BaselineSpec(knn_k=(1000,)), tmp_path / "b", data=tiny, progress=False, echo=lambda _: None)
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_baselines_command_line(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    argv = ["baselines", "--data", str(kaggle_dir), "--out", str(out), "--knn-k", "3", "--knn-pca", "784",
            "--rf-trees", "5", "--rf-depth", "none", "--jobs", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert [c["cell"] for c in json.loads((out / "baselines.json").read_text())["cells"]] == [
        "knn_k3_pca784", "rf_trees5_depthNone",
    ]  # fmt: skip
    for bad, message in (
        (["--knn-k", "3,x"], "argument --knn-k: 'x' is not an integer ≥ 1"),
        (["--knn-pca", "1000"], "argument --knn-pca: '1000' is not an integer in [1, 784]"),
        (["--rf-depth", "deep"], "argument --rf-depth: 'deep' is not an integer ≥ 1 or 'none'"),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as excinfo:
            main(["baselines", *bad])
        assert excinfo.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def _cell(key: str, val: float, test: float) -> dict:
    figures = {"n": 1, "mean": 0.0, "std": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    summary = {name: dict(figures) for name in ("fit_seconds", "predict_seconds")}
    summary["val_accuracy"] = figures | {"mean": val}
    summary["test_accuracy"] = figures | {"mean": test, "ci_low": test, "ci_high": test}
    summary["roc_auc"] = {"n": 1, "mean": [0.99] * 10, "std": [0.0] * 10}
    return {"cell": key, "family": "rf", "label": key, "params": {}, "summary": summary, "fits": []}


def test_best_cell_is_chosen_on_validation_and_its_test_reported_once() -> None:
    # Issue 18 item 8: the best cell was the one of highest TEST accuracy (chosen on the held-out digits).
    result = {
        "config": {"split_sizes": {}}, "data_source": "d", "repeats_requested": 1,
        "grids": {"knn_k": [], "knn_pca": [], "rf_trees": [], "rf_depth": []},
        "cells": [_cell("rf_a", val=0.95, test=0.91), _cell("rf_b", val=0.90, test=0.97)],
    }  # fmt: skip
    markdown = baselines_markdown(result)
    best = markdown.split("## Best of each family, chosen on validation")[1]
    assert "| rf_a | 0.9500 | 0.9100 |" in best and "rf_b" not in best
    assert "0.9700" not in markdown and markdown.count("0.9100") == 1  # test: once, for the chosen cell


@dataclass(frozen=True)
class _WithAnOptionAddedLater(BaselineSpec):
    """A spec that gained an option after runs were recorded (nobody added it to any list)."""

    smoothing: int = options.option(0, kind="int", low=0, help="an option added later")
    shown: int = options.option(0, kind="int", low=0, record="process", help="how this process shows it")


def test_an_option_added_later_guards_resume_by_itself(tiny, tmp_path: Path) -> None:
    """Issue 29, item 10: each experiment hand-picked what its config.json recorded, so a new option
    guarded resume only if someone remembered it. The record is derived from the spec's options."""
    out, quiet = tmp_path / "run", {"data": tiny, "progress": False, "echo": lambda _: None}
    spec = _WithAnOptionAddedLater(knn_k=(3,), knn_pca=(5,), rf_trees=(5,), rf_depth=(4,), n_jobs=1)
    baselines(spec, out, **quiet)
    assert json.loads((out / "config.json").read_text())["smoothing"] == 0
    baselines(replace(spec, shown=3, n_jobs=2, knn_k=(3, 5)), out, **quiet)  # process and items: resumes
    with pytest.raises(LenetError, match=r"different configuration \(smoothing: 0 there, 1 now\)"):
        baselines(replace(spec, smoothing=1), out, **quiet)


@pytest.mark.parametrize("report", ["evaluate-standard-reference", "evaluate-optimized-reference"])
def test_the_derived_record_keeps_what_runs_under_way_recorded(report: str) -> None:
    """Runs recorded by the hand-picked lists resume: the derived record names the same fields."""
    from lenet_tf.experiments.evaluation import EvaluationSpec

    recorded = json.loads((Path(__file__).resolve().parents[1] / "reports" / report / "config.json").read_text())
    job_facts = {"model", "split_seed", "split_sizes", "max_train", "data_fingerprint", "kind"}
    versions = {"schema_version", "lenet_tf_version"}
    assert set(options.run_record(EvaluationSpec())) | job_facts == set(recorded) - versions
