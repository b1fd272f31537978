from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lenet_tf.data import DigitData, split_data
from lenet_tf.ensemble import Ensemble
from lenet_tf.errors import LenetError
from lenet_tf.experiments.exploration import FIGURES, TEST_FIGURE, explore, pixel_statistics, stratified_indices
from lenet_tf.models import classic_lenet5
from lenet_tf.training import set_seed

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def _quiet(_: str) -> None:
    pass


def test_explore_writes_figures_and_a_summary_consistent_with_the_data(tiny, tmp_path: Path) -> None:
    out = tmp_path / "explore"
    summary = explore(tiny, out, pca_points=300, echo=_quiet)
    assert summary["figures"] == list(FIGURES)
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG, name
    assert not (out / TEST_FIGURE).exists()
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary.report))
    assert set(summary.paths) == {*FIGURES, "summary.json", "summary.md"} and summary.out == out

    counts = np.bincount(tiny.train_labels, minlength=10)
    assert summary["label_counts"] == counts.tolist()
    shares = summary["split_label_shares"]
    np.testing.assert_allclose(shares["all"], counts / counts.sum())
    deployment = split_data(tiny, "deployment")
    np.testing.assert_allclose(
        shares["deployment val"], np.bincount(deployment.y_val, minlength=10) / len(deployment.y_val)
    )
    for name, values in shares.items():
        assert sum(values) == pytest.approx(1.0)
        # Stratified: each class within one image's share of the whole (rounding of the class's count).
        part = {"deployment train": 420, "deployment val": 180, "evaluation train": 360, "evaluation val": 120,
                "evaluation test": 120, "all": 600}[name]  # fmt: skip
        assert np.abs(np.asarray(values) - shares["all"]).max() <= 1 / part + 1e-12, name

    train = summary["pixel_statistics"]["train"]
    pixels = tiny.train_images.astype(np.float64)
    assert train["mean"] == pytest.approx(pixels.mean())
    assert train["std"] == pytest.approx(pixels.std())
    assert train["zero_share"] == pytest.approx(np.mean(tiny.train_images == 0))
    assert train["full_share"] == pytest.approx(np.mean(tiny.train_images == 255))
    assert summary["pixel_statistics"]["test"]["images"] == 50
    assert summary["pca"]["points"] == 300 and 0 < sum(summary["pca"]["explained_variance_ratio"]) < 1

    markdown = (out / "summary.md").read_text()
    assert f"| 0 | {counts[0]} | {100 * counts[0] / 600:.2f} % |" in markdown
    assert f"| train | 600 | {train['mean']:.2f} | {train['std']:.2f} |" in markdown
    assert "max abs. deviation from all (points)" in markdown
    for name in FIGURES:
        assert f"`{name}`" in markdown


def test_pixel_statistics_and_stratified_subsample_by_hand() -> None:
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[0, 0, :4] = [255, 255, 10, 20]
    images[2, 5, 5] = 100
    stats = pixel_statistics(images)
    values = images.astype(float).ravel()
    assert stats["mean"] == pytest.approx(values.mean()) and stats["std"] == pytest.approx(values.std())
    assert stats["zero_share"] == pytest.approx(1 - 5 / values.size)
    assert stats["full_share"] == pytest.approx(2 / values.size)
    assert sum(stats["histogram"]) == values.size
    with pytest.raises(LenetError, match="expected uint8 images, got float64"):
        pixel_statistics(images.astype(float))
    labels = np.repeat(np.arange(10), 30)
    keep = stratified_indices(labels, 100, seed=3)
    assert len(keep) == 100 and np.bincount(labels[keep]).tolist() == [10] * 10
    assert stratified_indices(labels, 1000, seed=0).tolist() == list(range(300))


def test_explore_with_a_saved_model_predicts_test_digits(tiny, tmp_path: Path) -> None:
    set_seed(0)
    run = tmp_path / "run"
    Ensemble([classic_lenet5(), classic_lenet5()]).save(run / "members")
    summary = explore(tiny, tmp_path / "out", model_run=run, members=1, test_samples=12, pca_points=100, echo=_quiet)
    assert summary["figures"][-1] == TEST_FIGURE
    assert (tmp_path / "out" / TEST_FIGURE).read_bytes()[:8] == PNG
    predictions = summary["test_predictions"]
    expected = Ensemble.load(run, limit=1).predict(tiny.test_images[:12])
    assert predictions["members"] == 1 and predictions["predicted"] == expected.tolist()
    assert predictions["accuracy"] == pytest.approx(np.mean(expected == tiny.test_labels[:12]))
    assert "## Test predictions" in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        ({"test_images": None, "test_labels": None}, {"model_run": "run"}, "no test images"),
        ({}, {"model_run": "nowhere"}, "nowhere: no saved members"),
        ({}, {"pca_points": 5}, "pca_points must be an integer ≥ 20, got 5"),
        ({}, {"members": 0, "model_run": "run"}, "members must be an integer ≥ 1, got 0"),
    ],
)
def test_bad_input_is_one_line_error(change, options, message, tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LenetError, match=message) as info:
        explore(replace(tiny, **change), tmp_path / "out", echo=_quiet, **options)
    assert "\n" not in str(info.value)


def test_too_few_digits_are_refused(tiny, tmp_path: Path) -> None:
    few = DigitData(tiny.train_images[:12], tiny.train_labels[:12], None, None, source="twelve digits")
    with pytest.raises(LenetError, match="twelve digits: 12 labeled digits; exploration needs at least 20"):
        explore(few, tmp_path / "out", echo=_quiet)


def _script():
    spec = importlib.util.spec_from_file_location("explore_script", ROOT / "preliminary" / "explore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preliminary_script(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    script = _script()
    out = tmp_path / "explore"
    assert script.main(["--data", str(kaggle_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES, "summary.md", "summary.json"])
    assert script.main(["--data", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"explore: error: {tmp_path / 'missing.csv'}: no such file or directory"]
