from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lenet_tf.data import DataWarning
from lenet_tf.errors import LenetError
from lenet_tf.submission import KAGGLE_TEST_ROWS, read_submission, write_submission


def test_format_matches_sample_submission(tmp_path: Path) -> None:
    path = write_submission(np.array([2, 0, 9, 9]), tmp_path / "s.csv", expected_rows=4)
    assert path.read_text() == "ImageId,Label\n1,2\n2,0\n3,9\n4,9\n"
    frame = read_submission(path, expected_rows=4)
    assert frame["Label"].tolist() == [2, 0, 9, 9]


def test_never_overwrites_silently(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_submission(np.array([1, 2]), path)
    write_submission(np.array([1, 2]), path)  # identical content: a no-op, not an error
    with pytest.raises(LenetError, match="already exists with other predictions; pass --force"):
        write_submission(np.array([3, 4]), path)
    assert path.read_text() == "ImageId,Label\n1,1\n2,2\n"
    write_submission(np.array([3, 4]), path, force=True)
    assert path.read_text() == "ImageId,Label\n1,3\n2,4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temp files left behind


@pytest.mark.parametrize(
    ("labels", "rows", "message"),
    [
        (np.array([1, 2, 3]), 4, "3 predictions, expected 4"),
        (np.array([1, 10]), None, "labels must be integers 0-9"),
        (np.array([1, -1]), None, "labels must be integers 0-9"),
        (np.array([0.5, 1.0]), None, "labels must be integers 0-9"),
        (np.zeros((2, 2), dtype=int), None, "one label per image"),
        (np.array([], dtype=int), None, "no predictions"),
    ],
)
def test_invalid_predictions_are_refused(tmp_path: Path, labels, rows, message: str) -> None:
    with pytest.raises(LenetError, match=message):
        write_submission(labels, tmp_path / "s.csv", expected_rows=rows)
    assert not (tmp_path / "s.csv").exists()


def test_read_submission_checks(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Id,Label\n1,2\n")
    with pytest.raises(LenetError, match="header is Id,Label, expected ImageId,Label"):
        read_submission(path)
    path.write_text("ImageId,Label\n2,2\n")
    with pytest.raises(LenetError, match="ImageId must run 1…1"):
        read_submission(path)


def test_a_submission_of_other_than_28000_rows_warns(tmp_path: Path) -> None:
    with pytest.warns(DataWarning, match=r"s.csv: 28,001 rows, not the competition's 28,000: Kaggle will not accept"):
        write_submission(np.zeros(KAGGLE_TEST_ROWS + 1, dtype=int), tmp_path / "s.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        write_submission(np.zeros(KAGGLE_TEST_ROWS, dtype=int), tmp_path / "s.csv", force=True)
    assert len(read_submission(tmp_path / "s.csv", expected_rows=KAGGLE_TEST_ROWS)) == KAGGLE_TEST_ROWS
