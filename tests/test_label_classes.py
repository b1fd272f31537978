"""Issue 28, item 4: labeled rows of a single digit class train to a validation accuracy of 1.0000,
a figure that measures nothing; they are refused before training. Two to nine classes still train
(their accuracy means something), after the warning naming the missing digits."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import csv_text

from lenet_tf.cli import main
from lenet_tf.data import DataWarning, DigitData, load_data
from lenet_tf.errors import LenetError
from lenet_tf.pipeline import load_and_split


def _digits(tiny: DigitData, digits: tuple[int, ...]) -> DigitData:
    keep = np.isin(tiny.train_labels, digits)
    return replace(tiny, train_images=tiny.train_images[keep], train_labels=tiny.train_labels[keep])


def _train_csv(tmp_path: Path, data: DigitData) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(csv_text(data.train_images, data.train_labels))
    return path


def test_one_digit_class_is_refused_before_training(tiny: DigitData, tmp_path: Path, capsys) -> None:
    threes = _digits(tiny, (3,))
    train = _train_csv(tmp_path, threes)
    out = tmp_path / "run"
    argv = ["train", "--data", str(train), "--out", str(out), "--epochs", "1", "--max-train", "300", "--no-progress"]
    with pytest.warns(DataWarning, match="no image of digits 0, 1, 2, 4"):  # load_data's, before the refusal
        assert main(argv) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("lenet-tf: error:")]
    n = len(threes.train_labels)
    assert errors == [
        f"lenet-tf: error: {train}: its {n} labeled rows hold 1 digit class (digit 3 only); training needs at least 2"
    ]
    assert "accuracy" not in captured.out
    assert not out.exists()


@pytest.mark.parametrize("protocol", ["deployment", "evaluation"])
def test_every_split_for_training_refuses_one_class(tiny: DigitData, protocol: str) -> None:
    sevens = replace(_digits(tiny, (7,)), source="sevens.csv")
    with pytest.raises(LenetError, match=r"^sevens\.csv: its \d+ labeled rows hold 1 digit class \(digit 7 only\)"):
        load_and_split(protocol=protocol, split_seed=0, max_train=None, data=sevens, echo=lambda _: None)


def test_two_digit_classes_still_split_after_the_warning(tiny: DigitData, tmp_path: Path) -> None:
    train = _train_csv(tmp_path, _digits(tiny, (0, 1)))
    with pytest.warns(DataWarning, match=r"no image of digits 2, 3, 4, 5, 6, 7, 8, 9 among the \d+ labeled rows"):
        data = load_data(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no refusal: the accuracy over 2 digits means something
        _, split = load_and_split(protocol="deployment", split_seed=0, max_train=None, data=data, echo=lambda _: None)
    assert set(np.unique(split.y_train)) == set(np.unique(split.y_val)) == {0, 1}
