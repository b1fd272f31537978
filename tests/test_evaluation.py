from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import lenet_tf.experiments.evaluation as evaluation_module
import lenet_tf.experiments.learning_curve as learning_curve_module
from lenet_tf.data import Split, split_data
from lenet_tf.ensemble import train_members
from lenet_tf.errors import LenetError
from lenet_tf.experiments.evaluation import (
    EvaluationSpec,
    evaluate,
    repeat_metrics,
    repeats_averaged,
    summarize_repeats,
)
from lenet_tf.experiments.learning_curve import (
    LearningCurveSpec,
    curve_summary,
    learning_curve,
    learning_curve_markdown,
)
from lenet_tf.experiments.report import compare, compare_markdown, protocol_differences
from lenet_tf.stats import ci_at, ci_text, pm, pm_at, summarize
from lenet_tf.training import FitResult, TrainConfig


def test_summary_statistics_by_hand() -> None:
    summary = summarize([0.96, 0.97, 0.98])
    assert summary["mean"] == pytest.approx(0.97)
    assert summary["std"] == pytest.approx(0.01)  # sample std, ddof=1
    half = 4.302653 * 0.01 / np.sqrt(3)  # t(0.975, 2 dof)
    assert summary["ci_low"] == pytest.approx(0.97 - half, abs=1e-6)
    assert summary["ci_high"] == pytest.approx(0.97 + half, abs=1e-6)
    per_class = summarize([[1.0, 0.0], [0.0, 0.0]])
    assert per_class["mean"] == [0.5, 0.0] and per_class["std"] == pytest.approx([np.sqrt(0.5), 0.0])
    single = summarize([0.9])
    assert single["std"] == 0.0 and single["ci_low"] == single["ci_high"] == 0.9
    # Reports state one run's figure alone: no "± 0" spread and no zero-width interval.
    assert pm(single, 4) == "0.9000" and ci_text(single) == "n/a"
    assert pm(summary, 2) == "0.97 ± 0.01" and ci_text(summary, 2) == f"[{0.97 - half:.2f}, {0.97 + half:.2f}]"
    assert pm_at(per_class, 0, 3) == f"0.500 ± {np.sqrt(0.5):.3f}"
    # Intervals of a bounded figure stay inside [0, 1], per class too.
    auc = summarize([[0.9999, 0.5], [0.9990, 0.6]])
    assert auc["ci_high"][0] > 1 and ci_at(auc, 0, 4).endswith(", 1.0000]")
    assert ci_at(auc, 1, 2) == "[0.00, 1.00]"  # 0.55 ± 0.64: clipped at both ends
    assert ci_text(summarize([0.95, 0.99]), 2) == f"[{0.97 - 12.7062 * np.sqrt(0.0008) / np.sqrt(2):.2f}, 1.00]"


class _FixedScores:
    """Stands in for an Ensemble whose test probabilities are known."""

    def __init__(self, scores: np.ndarray):
        self.scores = scores

    def __len__(self) -> int:
        return 1

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.scores


def _pairwise_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    wins = (positive_scores[:, None] > negative_scores[None, :]).sum()
    ties = (positive_scores[:, None] == negative_scores[None, :]).sum()
    return (wins + 0.5 * ties) / (len(positive_scores) * len(negative_scores))


def test_repeat_metrics_roc_auc_and_confusion_against_hand_computation() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    scores = rng.random((60, 10))
    scores[np.arange(60), labels] += 0.6  # mostly right, with some mistakes
    scores /= scores.sum(axis=1, keepdims=True)
    images = np.zeros((60, 28, 28), dtype=np.uint8)
    split = Split(images, labels, images, labels, images, labels, protocol="evaluation")
    fit = FitResult(history={}, best_epoch=3, epochs_run=8, train_accuracy=0.91, val_accuracy=0.93, seconds=2.0, seed=0)
    metrics, proba = repeat_metrics(_FixedScores(scores), [fit], split)
    for digit in range(10):
        expected = _pairwise_auc(scores[labels == digit, digit], scores[labels != digit, digit])
        assert metrics["roc_auc"][digit] == pytest.approx(expected)
    predictions = scores.argmax(axis=1)
    assert metrics["test_accuracy"] == pytest.approx(np.mean(predictions == labels))
    confusion = np.array(metrics["confusion"])
    for digit in range(10):
        row = np.bincount(predictions[labels == digit], minlength=10) / 6
        np.testing.assert_allclose(confusion[digit], row)
    assert metrics["train_accuracy"] == 0.91 and metrics["val_accuracy"] == 0.93
    summary = summarize_repeats([metrics | {"test_accuracy": 0.5}, metrics | {"test_accuracy": 0.7}])
    assert summary["test_accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["test_accuracy"]["std"] == pytest.approx(np.sqrt(0.02))


def test_evaluate_writes_consistent_outputs_and_resumes(tiny, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "eval"
    spec = EvaluationSpec(model="classic", repeats=2, train=TrainConfig(epochs=1))
    partial: list[dict] = []

    def snapshot(message: str) -> None:  # while repeat 2 is reported, repeat 1's outputs are on disk
        if message.startswith("repeat 2/2"):
            partial.append(json.loads((out / "evaluation.json").read_text()))
            partial[-1]["md"] = (out / "evaluation.md").read_text()

    result = evaluate(spec, out, data=tiny, progress=False, echo=snapshot)
    assert partial[0]["summary"]["test_accuracy"]["n"] == 1 and partial[0]["repeats_requested"] == 2
    assert "**1 of 2 repeats finished so far**" in partial[0]["md"]
    assert "so far" not in (out / "evaluation.md").read_text()
    unfinished = compare_markdown([(out / "evaluation.json", partial[0])])
    assert "| classic [1] | ÷255 | 1 of 2 (unfinished) |" in unfinished
    assert result["config"]["split_sizes"] == {"train": 360, "val": 120, "test": 120}
    tests = [r["test_accuracy"] for r in result["repeats"]]
    assert len(tests) == 2 and tests[0] != tests[1]  # new seeds every repeat
    assert result["summary"]["test_accuracy"]["mean"] == pytest.approx(np.mean(tests))
    on_disk = json.loads((out / "evaluation.json").read_text())
    assert on_disk["summary"]["roc_auc"]["n"] == 2 and len(on_disk["summary"]["roc_auc"]["mean"]) == 10
    markdown = (out / "evaluation.md").read_text()
    assert f"{np.mean(tests):.3f} ± {np.std(tests, ddof=1):.3f}" in markdown
    for name in ("roc_curves.png", "confusion_matrix.png", "accuracy_repeats.png", "convergence.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    first_repeat = out / "repeats" / "repeat_01" / "metrics.json"
    stamp = first_repeat.stat().st_mtime_ns

    seen: list[dict] = []

    def spy(*args, **kwargs):  # a resumed run writes the finished repeats' outputs before training more
        seen.append(json.loads((out / "evaluation.json").read_text()))
        return train_members(*args, **kwargs)

    monkeypatch.setattr(evaluation_module, "train_members", spy)
    messages: list[str] = []
    grown = evaluate(
        EvaluationSpec(model="classic", repeats=3, train=TrainConfig(epochs=1)), out, data=tiny, progress=False,
        echo=messages.append,
    )  # fmt: skip
    assert any(m.startswith("resuming the evaluation") for m in messages)
    assert [(x["summary"]["test_accuracy"]["n"], x["repeats_requested"]) for x in seen] == [(2, 3)]
    assert first_repeat.stat().st_mtime_ns == stamp  # not trained again
    assert [r["test_accuracy"] for r in grown["repeats"][:2]] == tests
    assert grown["summary"]["test_accuracy"]["n"] == 3
    probabilities = [np.load(out / "repeats" / f"repeat_{r:02d}" / "test_probabilities.npy") for r in (1, 2, 3)]
    averaged = grown["repeats_averaged"]
    assert averaged["repeats"] == 3 and averaged["first_k_test_accuracy"][0] == pytest.approx(tests[0])
    assert averaged["first_k_test_accuracy"][-1] == pytest.approx(averaged["test_accuracy"])
    held_out = split_data(tiny, "evaluation", seed=0).y_test
    assert averaged["test_accuracy"] == pytest.approx(np.mean(np.argmax(np.mean(probabilities, 0), 1) == held_out))
    markdown = (out / "evaluation.md").read_text()
    assert f"test accuracy **{averaged['test_accuracy']:.4f}**" in markdown
    auc = grown["summary"]["roc_auc"]
    low, high = max(auc["ci_low"][0], 0.0), min(auc["ci_high"][0], 1.0)
    assert f"| 0 | {pm_at(auc, 0, 4)} | [{low:.4f}, {high:.4f}] |" in markdown
    recall = [[r["report"][str(d)]["recall"] for d in range(10)] for r in grown["repeats"]]
    assert grown["summary"]["report"]["recall"]["mean"] == pytest.approx(np.mean(recall, axis=0).tolist())
    assert "## Classification report" in markdown
    # Its time is the 3 repeats' training, 2 of them from the first process, not this process's alone.
    total, epochs = sum(r["seconds"] for r in grown["repeats"]), 3  # one member, one epoch each
    assert f"Training time: {total:,.0f} s over the 3 repeat(s), {epochs} epochs, " in markdown
    assert "seconds" not in grown.report and grown["invocation_seconds"] > 0  # labelled for what it measures
    # Asking for fewer repeats than are finished says so, in the log and in the table.
    messages.clear()
    fewer = evaluate(replace(spec, repeats=2), out, data=tiny, progress=False, echo=messages.append)
    assert fewer["summary"]["test_accuracy"]["n"] == 2 and fewer["repeats_on_disk"] == 3
    assert any("3 finished repeats are on disk; this summary uses the first 2" in m for m in messages)
    assert "2 repeats (3 finished on disk" in (out / "evaluation.md").read_text()


def test_repeats_averaged_by_hand() -> None:
    labels = np.arange(10)
    # Repeat 1 misreads the 0 (as a 5) and the 5 (as a 0); repeat 2 the 1, the 2 and the 5. Averaged,
    # only the 5 stays wrong (0.2 for 5 against 0.8 for 0).
    first, second = np.eye(10), np.eye(10)
    first[0, [0, 5]] = [0.4, 0.6]
    first[5, [5, 0]] = second[5, [5, 0]] = [0.2, 0.8]
    second[1, [1, 7]] = [0.45, 0.55]
    second[2, [2, 8]] = [0.3, 0.7]
    averaged = repeats_averaged(labels, [first, second])
    assert averaged["first_k_test_accuracy"] == pytest.approx([0.8, 0.9])
    assert averaged["test_accuracy"] == pytest.approx(0.9) and averaged["models"] == 2
    assert repeats_averaged(labels, [first]) is None
    # Digit 5 one vs rest: the true 5 scores 0.2, the 0 scores 0.3, the other eight 0 → AUC 8/9;
    # digit 0 likewise (0.7 for the 0, 0.8 for the 5); digit 3 is read right everywhere → 1.
    assert averaged["roc_auc"][5] == pytest.approx(8 / 9)
    assert averaged["roc_auc"][0] == pytest.approx(8 / 9)
    assert averaged["roc_auc"][3] == pytest.approx(1.0)


def test_evaluate_ensemble_of_two(tiny, tmp_path: Path) -> None:
    spec = EvaluationSpec(model="standard", members=2, repeats=1, train=TrainConfig(epochs=1))
    result = evaluate(spec, tmp_path / "ens", data=tiny, progress=False, echo=lambda _: None)
    repeat = result["repeats"][0]
    assert len(repeat["members"]) == 2
    # Train / val are the members' own figures averaged (the reference's ensemble figures); the
    # averaged probabilities' accuracy is kept beside them.
    assert repeat["train_accuracy"] == pytest.approx(np.mean([m["train_accuracy"] for m in repeat["members"]]))
    assert repeat["val_accuracy"] == pytest.approx(np.mean([m["val_accuracy"] for m in repeat["members"]]))
    assert 0 <= repeat["ensemble_val_accuracy"] <= 1 and "ensemble_val_accuracy" in result["summary"]
    markdown = (tmp_path / "ens" / "evaluation.md").read_text()
    assert "ensemble of 2" in markdown and "| val (averaged probabilities) |" in markdown


def test_bad_evaluation_and_curve_settings() -> None:
    with pytest.raises(LenetError, match="^repeats must be an integer ≥ 1"):
        EvaluationSpec(repeats=0).validate()
    with pytest.raises(LenetError, match=r"^fractions: 1.5 is not a fraction in \(0, 1\]"):
        LearningCurveSpec(fractions=(0.1, 1.5)).validate()
    with pytest.raises(LenetError, match="^fractions: give at least one value"):
        LearningCurveSpec(fractions=()).validate()


def test_learning_curve_points_summary_and_resume(tiny, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "curve"
    spec = LearningCurveSpec(model="classic", fractions=(0.1, 0.2), repeats=2, train=TrainConfig(epochs=2, patience=1))
    partial: list[dict] = []

    def spy(*args, directory, **kwargs):  # when round 2 starts, round 1's whole curve is on disk
        if "repeat_02" in str(directory) and not partial:
            partial.append(json.loads((out / "learning_curve.json").read_text()))
        return train_members(*args, directory=directory, **kwargs)

    monkeypatch.setattr(learning_curve_module, "train_members", spy)
    result = learning_curve(spec, out, data=tiny, progress=False, echo=lambda _: None)
    assert partial[0]["curve"]["sizes"] == [36, 72] and partial[0]["curve"]["counts"] == [1, 1]
    assert partial[0]["repeats_requested"] == 2
    assert result["curve"]["sizes"] == [36, 72]
    assert [(p["size"], p["repeat"]) for p in result["points"]] == [(36, 1), (36, 2), (72, 1), (72, 2)]
    small = [p["test_accuracy"] for p in result["points"] if p["size"] == 36]
    assert result["curve"]["test_mean"][0] == pytest.approx(np.mean(small))
    assert result["curve"]["test_std"][0] == pytest.approx(np.std(small, ddof=1))
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "so far" not in (out / "learning_curve.md").read_text()
    messages: list[str] = []
    again = learning_curve(spec, out, data=tiny, progress=False, echo=messages.append)
    assert any(m.startswith("resuming the learning curve") for m in messages)
    assert again["points"] == result["points"]  # resumed: the same points, seconds included
    fewer = learning_curve(replace(spec, repeats=1), out, data=tiny, progress=False, echo=lambda _: None)
    assert fewer["points"] == [p for p in result["points"] if p["repeat"] == 1]
    with pytest.raises(LenetError, match=r"--fractions: 0.02 of 360 training images is 7; a subset needs at least 20"):
        learning_curve(replace(spec, fractions=(0.02, 0.1)), tmp_path / "small", data=tiny, progress=False)


@pytest.mark.parametrize(("subsets", "shared"), [("one", True), ("per-repeat", False)])
def test_the_reference_way_shares_one_subset_per_size_between_repeats(
    subsets: str, shared: bool, tiny, tmp_path: Path, monkeypatch
) -> None:
    seen: dict[tuple[int, str], bytes] = {}

    class Untrained:  # the rows are what is checked: nothing needs training
        def predict_proba(self, images: np.ndarray) -> np.ndarray:
            return np.full((len(images), 10), 0.1)

    def record(builder, subset, *, directory, **kwargs):
        seen[(len(subset.y_train), Path(directory).name)] = subset.x_train.tobytes()
        return Untrained(), [SimpleNamespace(epochs_run=1, seconds=0.0)]

    monkeypatch.setattr(learning_curve_module, "train_members", record)
    spec = LearningCurveSpec(model="classic", fractions=(0.1, 0.2), repeats=2, subsets=subsets)
    result = learning_curve(spec, tmp_path / subsets, data=tiny, progress=False, echo=lambda _: None)
    assert (seen[(36, "repeat_01")] == seen[(36, "repeat_02")]) is shared
    assert (seen[(72, "repeat_01")] == seen[(72, "repeat_02")]) is shared
    assert result["config"]["subsets"] == subsets
    report = (tmp_path / subsets / "learning_curve.md").read_text()
    assert ("the spread is the initialisation's alone" in report) is shared


def test_curve_summary_by_hand() -> None:
    points = [
        {"size": 10, "train_accuracy": 1.0, "test_accuracy": 0.5},
        {"size": 10, "train_accuracy": 0.8, "test_accuracy": 0.7},
        {"size": 20, "train_accuracy": 0.9, "test_accuracy": 0.8},
    ]
    curve = curve_summary(points, repeats=2)
    assert curve["sizes"] == [10, 20]
    assert curve["train_mean"] == pytest.approx([0.9, 0.9]) and curve["test_std"][0] == pytest.approx(np.sqrt(0.02))
    assert curve["counts"] == [2, 1]
    table = learning_curve_markdown({"curve": curve, "config": {"model": {"name": "standard"}}})
    assert f"| 10 | 0.9000 ± {np.sqrt(0.02):.4f} | 0.6000 ± {np.sqrt(0.02):.4f} |" in table
    assert "| 20 | 0.9000 | 0.8000 |" in table  # one repeat: no spread claimed
    assert "## Cost" not in table  # no points given, no cost claimed


def test_the_curve_states_what_its_trainings_cost_and_the_pace_they_ran_at() -> None:
    points = [
        {"size": 10, "repeat": 1, "train_accuracy": 1.0, "test_accuracy": 0.5, "epochs": [20], "seconds": 20.0},
        {"size": 10, "repeat": 2, "train_accuracy": 0.8, "test_accuracy": 0.7, "epochs": [30], "seconds": 120.0},
        {"size": 20, "repeat": 1, "train_accuracy": 0.9, "test_accuracy": 0.8, "epochs": [5, 7], "seconds": 36.0},
    ]
    result = {"curve": curve_summary(points, repeats=1), "config": {"model": {"name": "standard"}}, "points": points}
    text = learning_curve_markdown(result)
    assert "3 trainings, 176 s of training in all (0.0 h;" in text
    # size 10: 25 epochs on average (20–30), 70 s per training, 1.00 s and 4.00 s per epoch
    assert "| 10 | 2 | 25 (20–30) | 70 | 1.00–4.00 |" in text
    assert "| 20 | 1 | 12 (12–12) | 36 | 3.00–3.00 |" in text  # two members: their epochs summed


def test_compare_puts_reference_beside_ours(tiny, tmp_path: Path) -> None:
    with pytest.raises(LenetError, match="no finished study"):
        compare(tmp_path, tmp_path / "r.md")
    spec = EvaluationSpec(model="standard", repeats=1, train=TrainConfig(epochs=1))
    evaluate(spec, tmp_path / "results" / "std", data=tiny, progress=False, echo=lambda _: None)
    text = compare(tmp_path / "results", tmp_path / "report.md").read_text()
    # The tiny run (360/120/120 images, 1 epoch) is not the reference protocol: no reference beside it.
    # (Once the accuracy rows gained their reading column this matched digit 1's ROC AUC row instead.)
    assert "| standard [1] | raw | 1 |" in text and "0.965 ± 0.005" not in text
    assert "[1] `" in text and "not the reference protocol (split 360/120/120; training epochs=1)" in text
    # A run on the reference protocol gets the published figures beside it.
    one, auc = summarize([0.96, 0.97]), summarize([[0.999] * 10, [0.998] * 10])
    result = {
        "config": _reference_config("standard"),
        "summary": {"train_accuracy": one, "val_accuracy": one, "test_accuracy": one, "roc_auc": auc},
    }
    text = compare_markdown([(Path("results/evaluate-standard/evaluation.json"), result)])
    assert "| standard | ÷255 (before 0.2.0) | 2 |" in text and "0.965 ± 0.005" in text and "0.9976 ± 0.0007" in text
    assert "not the reference protocol" not in text
    tuned = _reference_config("optimized") | {"model": {"name": "optimized", "hparams_source": "results/tune/b.json"}}
    assert protocol_differences(tuned) == ["hyperparameters from results/tune/b.json"]
    assert protocol_differences(_reference_config("optimized")) == []
    # A reference run recorded before the weight average existed (reports/evaluate-optimized) is one still.
    before = _reference_config("optimized")
    before["train"] = {k: v for k, v in before["train"].items() if k != "ema_momentum"}
    assert protocol_differences(before) == []
    assert protocol_differences(_reference_config("optimized") | {"train": {**before["train"], "ema_momentum": 0.99}})
    # More batches per compiled call change the pace, not the updates: still the reference protocol.
    paced = _reference_config("standard")
    paced["train"] = {**paced["train"], "steps_per_execution": 8}
    assert protocol_differences(paced) == []
    paced["train"]["batch_size"] = 64
    assert protocol_differences(paced) == ["training batch_size=64"]


def _reference_config(model: str) -> dict:
    return {
        "model": {"name": model, "hparams_source": "preset" if model == "optimized" else None},
        "members": 1,
        "split_sizes": {"train": 25200, "val": 8400, "test": 8400},
        "train": TrainConfig().to_dict(),
    }


def test_compare_sets_the_repeats_averaged_beside_the_reference_ensemble() -> None:
    one = summarize([0.97, 0.98])
    auc = summarize([[0.999] * 10, [0.998] * 10])
    result = {
        "config": _reference_config("optimized"),
        "summary": {"train_accuracy": one, "val_accuracy": one, "test_accuracy": one, "roc_auc": auc},
        "repeats_averaged": {"models": 10, "repeats": 10, "test_accuracy": 0.98612},
    }
    text = compare_markdown([(Path("results/evaluate-optimized/evaluation.json"), result)])
    row = next(line for line in text.splitlines() if "models of the repeats averaged" in line)
    assert "0.9861" in row and "0.985 ± 0.001" in row  # the reference's ensemble of 10 optimized
    assert "| optimized | ÷255, no output L2 (before 0.2.0) | 2 | 0.975 ± 0.007 | 0.975 ± 0.005 |" in text


def test_large_seeds_train_instead_of_overflowing(tiny, tmp_path: Path) -> None:
    # Issue 16 defect 1: `evaluate --seed 5000` and `learning-curve --seed 1` ended in NumPy's
    # "Seed must be between 0 and 2**32 - 1" (derived seeds were multiplied by 1000 and 100,000).
    spec = EvaluationSpec(model="classic", repeats=1, seed=5000, train=TrainConfig(epochs=1))
    result = evaluate(spec, tmp_path / "eval", data=tiny, progress=False, echo=lambda _: None)
    assert result.summary["test_accuracy"]["n"] == 1 and len(result.items) == 1
    curve = LearningCurveSpec(model="classic", fractions=(0.1,), repeats=1, seed=1, train=TrainConfig(epochs=1))
    result = learning_curve(curve, tmp_path / "curve", data=tiny, progress=False, echo=lambda _: None)
    assert result["curve"]["counts"] == [1]
    with pytest.raises(LenetError, match=r"^seed must be an integer in \[0, 4294967295\], got 4294967296$"):
        evaluate(replace(spec, seed=2**32), tmp_path / "big", data=tiny, progress=False, echo=lambda _: None)
    assert not (tmp_path / "big").exists()  # refused before anything was written
