"""The comparison report: differences in units of the reference's standard deviation, and an
--output that compare did not write is never replaced without --force."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from lenet_tf.cli import main
from lenet_tf.errors import LenetError
from lenet_tf.experiments.report import (
    REPORT_MARK,
    compare,
    compare_markdown,
    curve_reading,
    grouped_trend,
    sd_difference,
)
from lenet_tf.rundir import write_json
from lenet_tf.stats import summarize
from lenet_tf.training import TrainConfig


def _evaluation(model: str, test: list[float], *, averaged: float | None = None) -> dict:
    """An evaluation.json on the reference protocol (25,200 / 8,400 / 8,400, the reference's fit)."""
    result = {
        "config": {
            "model": {"name": model, "hparams_source": "preset" if model == "optimized" else None},
            "members": 1,
            "split_sizes": {"train": 25200, "val": 8400, "test": 8400},
            "train": TrainConfig().to_dict(),
        },
        "summary": {
            "train_accuracy": summarize([0.967, 0.967]),
            "val_accuracy": summarize([0.968, 0.978]),
            "test_accuracy": summarize(test),
            "roc_auc": summarize([[0.9997] * 10, [0.9995] * 10]),
        },
    }
    if averaged is not None:
        result["repeats_averaged"] = {"models": 10, "repeats": 10, "test_accuracy": averaged}
    return result


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "reports"
    (results / "evaluate-standard").mkdir(parents=True)
    payload = _evaluation("standard", [0.965, 0.977])
    (results / "evaluate-standard" / "evaluation.json").write_text(json.dumps(payload))
    return results


def test_sd_difference() -> None:
    assert sd_difference(0.971, (0.965, 0.005)) == "+1.2"
    assert sd_difference(0.9829, (0.985, 0.001)) == "-2.1"
    assert sd_difference(0.97, None) == "—" and sd_difference(0.97, (0.97, 0.0)) == "—"


def test_each_row_gives_ours_the_reference_and_the_difference_in_its_sds() -> None:
    text = compare_markdown(
        [(Path("reports/evaluate-standard/evaluation.json"), _evaluation("standard", [0.965, 0.977]))]
    )
    # train 0.967 = the reference's mean; val 0.973 is +1.0 SD of 0.968 ± 0.005; test 0.971, +1.2 SD of 0.965 ± 0.005
    row = "| standard | ÷255 (before 0.2.0) | 2 | 0.967 ± 0.000 | 0.967 ± 0.007 | +0.0 | 0.973 ± 0.007 | 0.968 ± 0.005"
    row += " | +1.0 |"
    assert row + " 0.971 ± 0.008 | 0.965 ± 0.005 | +1.2 |" in text
    auc = "| standard | ÷255 (before 0.2.0) | 0 | 0.9996 ± 0.0001 | 0.9997 ± 0.0001 | -1.0 |"
    auc += " `reports/evaluate-standard` |"
    assert auc in text  # ROC AUC, digit 0
    assert "(our mean − the reference's mean) / the reference's standard deviation" in text
    averaged = _evaluation("optimized", [0.97, 0.98], averaged=0.9829)
    text = compare_markdown([(Path("reports/evaluate-optimized/evaluation.json"), averaged)])
    row = next(line for line in text.splitlines() if "models of the repeats averaged" in line)
    assert "| 0.9829 | 0.985 ± 0.001 | -2.1 |" in row  # beside the reference's ensemble of 10


def test_a_strided_reading_is_set_beside_the_figures_of_the_model_it_reads() -> None:
    strided = _evaluation("optimized-strided", [0.975, 0.981], averaged=0.9851)
    text = compare_markdown([(Path("reports/evaluate-optimized-strided/evaluation.json"), strided)])
    row = next(line for line in text.splitlines() if line.startswith("| optimized-strided [1] |"))
    assert "| 0.978 ± 0.004 | 0.978 ± 0.003 | +0.0 |" in row  # the optimized LeNet's reference test figure
    averaged = next(line for line in text.splitlines() if "models of the repeats averaged" in line)
    assert "| 0.9851 | 0.985 ± 0.001 | +0.1 |" in averaged
    assert "[1] `reports/evaluate-optimized-strided` (optimized-strided): the optimized LeNet with each pooling" in text
    auc = "| optimized-strided [1] | ÷255, no output L2 (before 0.2.0) | 0 | 0.9996 ± 0.0001 | 0.9999 ± 0.0001 | -3.0 |"
    assert auc in text


def test_compare_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    results = _results(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    with pytest.raises(LenetError, match=r"notes.md already exists and compare did not write it; pass --force"):
        compare(results, notes)
    assert notes.read_text() == "my notes\n"
    # Its own report is replaced by a rerun (new evaluations finished), another file only with force.
    report = compare(results, tmp_path / "report.md")
    assert report.read_text().startswith(REPORT_MARK + "\n")
    (results / "evaluate-optimized").mkdir()
    (results / "evaluate-optimized" / "evaluation.json").write_text(json.dumps(_evaluation("optimized", [0.97, 0.98])))
    # (This matched the ROC AUC row of digit 2 once the accuracy rows gained their reading column.)
    assert "| optimized | ÷255, no output L2 (before 0.2.0) | 2 |" in compare(results, report).read_text()
    assert compare(results, notes, force=True).read_text().startswith(REPORT_MARK)


def test_compare_cli_force(tmp_path: Path, capsys) -> None:
    results = _results(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    argv = ["compare", "--results", str(results), "--output", str(notes)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lenet-tf: error: {notes} already exists and compare did not write it; pass --force to replace it"]
    assert notes.read_text() == "my notes\n"
    assert main([*argv, "--force"]) == 0 and "| standard | ÷255 (before 0.2.0) | 2 |" in notes.read_text()


def _curve(train: list[float], test: list[float], std: float, n: int = 5) -> dict:
    sizes = [252 * (i + 1) for i in range(len(train))]
    return {"sizes": sizes, "repeats": n, "counts": [n] * len(sizes), "train_mean": train, "test_mean": test,
            "train_std": [std] * len(sizes), "test_std": [std] * len(sizes)}  # fmt: skip


def test_curve_reading_says_where_the_curves_meet_and_whether_data_helps() -> None:
    rising = _curve([1.0, 0.99, 0.985], [0.90, 0.97, 0.98], std=0.002)
    text = curve_reading(rising)
    assert "gap is 0.100 at 252 training images and 0.005 at 756" in text
    assert "meet (gap < 0.01) from 756 images" in text and "still rising: more data would help" in text
    flat = _curve([1.0, 0.99, 0.99], [0.90, 0.95, 0.951], std=0.01)
    text = curve_reading(flat)
    assert "do not meet" in text and "no significant rise" in text
    assert "too few to test a trend" in curve_reading(_curve([1.0, 0.99], [0.9, 0.95], 0.01, n=1))


def test_a_long_curve_is_read_by_the_trend_of_its_upper_half_not_its_last_step() -> None:
    # The last step falls (0.930 → 0.926), yet the upper half rises by about 0.004 per 252 images.
    test = [0.80, 0.85, 0.88, 0.90, 0.91, 0.914, 0.918, 0.922, 0.930, 0.926]
    text = curve_reading(_curve([0.99] * 10, test, std=0.01))
    assert "from 1,512 to 2,520 images (a straight line through its 25 trainings at 5 sizes): +0.0143 per 1,000" in text
    assert text.rstrip().endswith("still rising: more data would help.")
    flat = [0.80, 0.85, 0.88, 0.90, 0.91, 0.92, 0.915, 0.921, 0.916, 0.919]
    assert curve_reading(_curve([0.99] * 10, flat, std=0.01)).rstrip().endswith("no significant rise.")


def test_the_trend_is_linregress_on_every_training_recovered_from_the_summaries() -> None:
    rng = np.random.default_rng(1)
    sizes, counts = [1000, 1500, 2000, 2500], [3, 5, 4, 6]
    groups = [0.9 + 1e-5 * x + rng.normal(0, 0.01, c) for x, c in zip(sizes, counts, strict=True)]
    fit = grouped_trend(sizes, [g.mean() for g in groups], [g.std(ddof=1) for g in groups], counts)
    line = stats.linregress(np.repeat(sizes, counts), np.concatenate(groups))
    assert fit["trainings"] == 18
    assert np.allclose([fit["slope"], fit["stderr"], fit["pvalue"]], [line.slope, line.stderr, line.pvalue])


def test_a_five_size_curve_rising_beyond_its_repeats_noise_reads_as_rising() -> None:
    # Regression: a line through the 3 upper sizes' means alone had 1 degree of freedom, so this
    # clear rise (0.03 and 0.02 a step, repeats scattering 0.003) read as "no significant rise".
    text = curve_reading(_curve([0.99] * 5, [0.85, 0.88, 0.90, 0.93, 0.95], std=0.003))
    assert "its 15 trainings at 3 sizes" in text and text.rstrip().endswith("still rising: more data would help.")
    exact = curve_reading(_curve([1.0] * 4, [0.25, 0.5, 0.75, 1.0], std=0.0))  # no scatter at all
    assert exact.rstrip().endswith("still rising: more data would help.")


def test_compare_reports_curves_and_classic_runs_beside_their_references(tmp_path: Path) -> None:
    results = tmp_path / "reports"
    curve = {"curve": _curve([1.0, 0.99], [0.9, 0.95], 0.01), "config": {"model": {"name": "standard"}},
             "repeats_requested": 20}  # fmt: skip
    write_json(results / "lc" / "learning_curve.json", curve)
    classic = {"member_val_accuracy": [0.985, 0.987], "config": {
        "model": {"name": "classic"}, "protocol": "deployment", "split_sizes": {"train": 29400, "val": 12600},
        "train": {"epochs": 20, "batch_size": 64, "restore_best": False}}}  # fmt: skip
    write_json(results / "classic" / "metrics.json", classic)
    write_json(results / "other" / "metrics.json", classic | {"config": {"model": {"name": "standard"}}})
    text = compare(results, tmp_path / "report.md").read_text()
    assert "None finished yet" in text and "5 of 20 repeats per size" in text
    assert "| 504 | 5 | 0.9900 ± 0.0100 | 0.9500 ± 0.0100 |" in text
    row = "| deployment split 29400/12600, 20 epochs, batch 64, last weights | 2 | 0.9860 ± 0.0014 | ≥ 0.99 | -0.0040 |"
    assert row in text and text.count("deployment split") == 1  # the standard run's metrics.json is no classic row


def test_each_row_says_how_its_model_met_the_reference_code() -> None:
    from lenet_tf.experiments.report import model_reading

    def config(model: dict) -> dict:
        return {"model": model}

    assert model_reading(config({"name": "standard"})) == "÷255 (before 0.2.0)"
    assert model_reading(config({"name": "optimized"})) == "÷255, no output L2 (before 0.2.0)"
    assert model_reading(config({"name": "optimized", "input_scale": "raw", "output_l2": True})) == "raw, output L2"
    assert model_reading(config({"name": "optimized", "input_scale": "raw", "output_l2": False})) == "raw, no output L2"
    assert model_reading(config({"name": "optimized-strided", "input_scale": "unit", "output_l2": True})) == (
        "÷255, output L2"
    )
    assert model_reading(config({"name": "standard", "input_scale": "raw", "output_l2": None})) == "raw"
    payload = _evaluation("optimized", [0.975, 0.981])
    payload["config"]["model"] |= {"input_scale": "raw", "output_l2": True}
    text = compare_markdown([(Path("r/evaluation.json"), payload)])
    assert "| optimized | raw, output L2 | 2 |" in text and "population SDs" in text


def test_each_roc_auc_row_names_its_run() -> None:
    # reports/report.md listed the ROC AUC of two optimized evaluations (÷255 without output L2, and
    # the reference's protocol) as "optimized", digit by digit, with nothing to tell them apart.
    before = _evaluation("optimized", [0.96, 0.97])
    now = _evaluation("optimized", [0.975, 0.981])
    now["config"]["model"] |= {"input_scale": "raw", "output_l2": True}
    text = compare_markdown([(Path("r/evaluate-optimized/evaluation.json"), before),
                             (Path("r/evaluate-optimized-reference/evaluation.json"), now)])  # fmt: skip
    auc = text.split("## Per-class ROC AUC")[1].split("\n## ")[0]
    rows = [line for line in auc.splitlines() if line.startswith("| optimized |")]
    assert len(rows) == 20
    before_rows = [r for r in rows if r.endswith("| `r/evaluate-optimized` |")]
    now_rows = [r for r in rows if r.endswith("| `r/evaluate-optimized-reference` |")]
    assert len(before_rows) == len(now_rows) == 10
    assert all("| ÷255, no output L2 (before 0.2.0) |" in r for r in before_rows)
    assert all("| raw, output L2 |" in r for r in now_rows)


def _damaged(value, draw):
    """``value`` with one entry somewhere inside replaced by a drawn value."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        if draw(st.booleans()):
            return {**value, key: draw(_JUNK)}
        return {**value, key: _damaged(value[key], draw)}
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        copy = list(value)
        copy[index] = draw(_JUNK) if draw(st.booleans()) else _damaged(value[index], draw)
        return copy
    return draw(_JUNK)


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3),
                  st.just([]), st.just({}))  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_evaluation_gives_a_report_or_one_line(data, tmp_path: Path) -> None:
    """Issue 28: every JSON compare reads back: any damage gives a report or one LenetError naming the
    file, never a traceback, never an accuracy outside [0, 1] beside the reference."""
    results = Path(tempfile.mkdtemp(dir=tmp_path))  # one fresh folder per example (the fixture is shared)
    (results / "evaluate-optimized").mkdir()
    payload = _damaged(_evaluation("optimized", [0.975, 0.981], averaged=0.985), data.draw)
    path = results / "evaluate-optimized" / "evaluation.json"
    path.write_text(json.dumps(payload))
    try:
        text = compare(results, results / "report.md").read_text()
    except LenetError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    for share in re.findall(r"\| (-?\d+\.\d{3,4}) ±", text):
        assert 0 <= float(share) <= 1
