"""Which test images a submission is made from, and its row count (issue 18, items 4-6)."""

from __future__ import annotations

import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import csv_text

from lenet_tf.cli import main
from lenet_tf.data import DataWarning, DigitData, load_data, load_test_data
from lenet_tf.ensemble import Ensemble
from lenet_tf.errors import LenetError
from lenet_tf.models import classic_lenet5
from lenet_tf.submission import read_submission


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A members folder holding one (untrained) model: enough to predict."""
    return Ensemble([classic_lenet5()]).save(tmp_path / "run")


@pytest.fixture
def test10(tmp_path: Path, tiny: DigitData) -> Path:
    path = tmp_path / "test10.csv"
    path.write_text(csv_text(tiny.test_images[:10]))
    return path


def _sample_submission(rows: int) -> str:
    return "ImageId,Label\n" + "".join(f"{i},0\n" for i in range(1, rows + 1))


def test_test_file_replaces_the_sources_own(kaggle_dir: Path, tmp_path: Path, test10: Path, tiny) -> None:
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name in ("train.csv", "test.csv"):
            handle.write(kaggle_dir / name, name)
    for source in (kaggle_dir, archive, kaggle_dir / "train.csv"):
        data = load_data(source, test=test10)
        np.testing.assert_array_equal(data.test_images, tiny.test_images[:10])
        np.testing.assert_array_equal(data.train_labels, tiny.train_labels)
        assert str(test10) in data.source
    with pytest.raises(LenetError, match="a test file goes with Kaggle training data .*, not 'sample'"):
        load_data("sample", test=test10)


def test_predict_uses_the_given_test_file(kaggle_dir: Path, run: Path, test10: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub.csv"
    argv = ["predict", "--run", str(run), "--data", str(kaggle_dir), "--test", str(test10), "--submission", str(out)]
    assert main(argv) == 0
    assert len(read_submission(out)) == 10


def test_predict_reads_test_data_alone(tmp_path: Path, run: Path, tiny: DigitData) -> None:
    folder = tmp_path / "only-test"
    folder.mkdir()
    (folder / "test.csv").write_text(csv_text(tiny.test_images))
    for source in (folder, folder / "test.csv"):
        out = tmp_path / f"{Path(source).name}.csv"
        assert main(["predict", "--run", str(run), "--data", str(source), "--submission", str(out)]) == 0
        assert len(read_submission(out)) == len(tiny.test_images)
    # A zip whose train.csv is broken: predicting never reads it.
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("train.csv", "not,a,valid,file\n")
        handle.write(folder / "test.csv", "test.csv")
    data = load_test_data(archive)
    np.testing.assert_array_equal(data.images, tiny.test_images)
    assert data.labels is None
    sample = load_test_data("sample")
    assert len(sample.images) == len(sample.labels) == 1000


def test_predict_without_test_images_is_one_line(kaggle_dir: Path, run: Path, tmp_path: Path, capsys) -> None:
    (kaggle_dir / "test.csv").unlink()
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(main(["predict", "--run", str(run), "--data", str(kaggle_dir), "--submission", str(tmp_path / "s")]))
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lenet-tf: error: {kaggle_dir}: the directory holds neither test.csv nor digit-recognizer.zip"]


def test_test_csv_must_match_sample_submission(kaggle_dir: Path, tmp_path: Path, run: Path, capsys) -> None:
    (kaggle_dir / "sample_submission.csv").write_text(_sample_submission(49))  # test.csv has 50 rows
    message = r"test.csv: 50 images, but .*sample_submission.csv has 49 rows; Kaggle expects one per image"
    with pytest.raises(LenetError, match=message):
        load_data(kaggle_dir)
    with pytest.raises(LenetError, match=message):
        load_test_data(kaggle_dir)
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            handle.write(kaggle_dir / name, name)
    with pytest.raises(LenetError, match=message):
        load_test_data(archive)
    out = tmp_path / "s.csv"
    assert main(["predict", "--run", str(run), "--data", str(kaggle_dir), "--submission", str(out)]) == 2
    assert not out.exists()
    (kaggle_dir / "sample_submission.csv").write_text(_sample_submission(50))
    assert len(load_test_data(kaggle_dir).images) == 50


def test_a_submission_not_of_28000_rows_warns(kaggle_dir: Path, run: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    with pytest.warns(DataWarning, match=r"s.csv: 50 rows, not the competition's 28,000: Kaggle will not accept it"):
        assert main(["predict", "--run", str(run), "--data", str(kaggle_dir), "--submission", str(out)]) == 0
    assert len(read_submission(out)) == 50


def test_data_warnings_print_as_one_line() -> None:
    from lenet_tf.data import one_line_warnings

    one_line_warnings()
    assert warnings.formatwarning("x.csv: 5 rows", DataWarning, "f.py", 1) == "lenet-tf: warning: x.csv: 5 rows\n"
    assert "UserWarning" in warnings.formatwarning("other", UserWarning, "f.py", 1)
