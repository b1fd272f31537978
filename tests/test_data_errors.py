"""Data a user may plausibly give: unsplittable, unbalanced, mis-formatted, compressed (issue 16,
defects 2 and 4). Each gives one short line (or loads), never a traceback or a page of text."""

from __future__ import annotations

import gzip
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import csv_text

from lenet_tf.cli import main
from lenet_tf.data import DataWarning, DigitData, load_data, split_data, subsample
from lenet_tf.errors import LenetError


def _digits(counts: dict[int, int]) -> DigitData:
    """Blank images with ``counts[d]`` labels of each digit d."""
    labels = np.concatenate([np.full(n, digit, dtype=np.uint8) for digit, n in counts.items()])
    return DigitData(np.zeros((len(labels), 28, 28), np.uint8), labels, None, None, source="digits")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lenet-tf: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("data", "protocol", "message"),
    [
        (_digits({d: 2 for d in range(9)} | {9: 1}), "deployment", "digits: digit 9 has 1 labeled image(s)"),
        (_digits({d: 5 for d in range(9)} | {4: 1}), "deployment", "digit 4 has 1 labeled image(s)"),
        (_digits({d: 10 for d in range(9)} | {3: 2}), "evaluation", "digit 3 has 2 labeled image(s); the evaluation"),
        (_digits({d: 3 for d in range(10)}), "deployment", "30 labeled images are too few for the deployment split"),
        (_digits({d: 3 for d in range(10)}), "evaluation", "30 labeled images are too few for the evaluation split"),
        (_digits({d: 4 for d in range(10)}), "evaluation", "40 labeled images are too few"),
    ],
)
def test_unsplittable_data_is_one_line(data: DigitData, protocol: str, message: str) -> None:
    with pytest.raises(LenetError) as excinfo:
        split_data(data, protocol)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_rows_a_split_needs_are_named_and_suffice() -> None:
    for protocol, need in (("deployment", 31), ("evaluation", 47)):
        with pytest.raises(LenetError, match=f"use at least {need}$"):
            split_data(subsample(_digits({d: 100 for d in range(10)}), need - 1), protocol)
        split = split_data(subsample(_digits({d: 100 for d in range(10)}), need), protocol)
        assert sum(split.sizes().values()) == need


def test_stratified_subset_of_a_digit_seen_once_is_one_line() -> None:
    with pytest.raises(LenetError, match="--max-train 50: digit 7 has 1 labeled image; a stratified subset needs 2"):
        subsample(_digits({d: 10 for d in range(7)} | {7: 1}), 50)
    with pytest.raises(LenetError, match="--max-train 20 leaves 5 of the 25 rows out"):
        subsample(_digits({d: 3 for d in range(5)} | {d: 2 for d in range(5, 10)}), 20)


def test_a_digit_without_images_warns(tmp_path: Path, tiny: DigitData) -> None:
    keep = tiny.train_labels != 7
    path = tmp_path / "train.csv"
    path.write_text(csv_text(tiny.train_images[keep], tiny.train_labels[keep]))
    with pytest.warns(DataWarning, match=r"train.csv: no image of digit 7 among the \d+ labeled rows"):
        data = load_data(path)
    split_data(data)  # trains on the nine digits it has
    path.write_text(csv_text(tiny.train_images, tiny.train_labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_data(path)


def test_tiny_train_csv_on_the_command_line(tmp_path: Path, tiny: DigitData, capsys) -> None:
    path = tmp_path / "train.csv"
    path.write_text(csv_text(tiny.train_images[:15], tiny.train_labels[:15]))
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(main(["train", "--data", str(path), "--out", str(tmp_path / "r"), "--epochs", "1"]))
    assert excinfo.value.code == 2
    assert "labeled image(s); the deployment split needs at least 2 of each digit present" in _error_line(capsys)


HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def _text(tiny: DigitData, n: int = 60) -> str:
    return csv_text(tiny.train_images[:n], tiny.train_labels[:n])


def test_a_semicolon_file_is_named_not_quoted(tmp_path: Path, tiny: DigitData, capsys) -> None:
    path = tmp_path / "train.csv"
    path.write_text(_text(tiny).replace(",", ";"))
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    line = _error_line(capsys)
    assert line == f"lenet-tf: error: {path}: line 1: the fields are separated by ';', expected commas"


def test_a_long_bad_header_is_quoted_short(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("x" * 10_000 + "," + HEADER + "\n")
    with pytest.raises(LenetError) as excinfo:
        load_data(path)
    assert "header column 1 is 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'" in str(excinfo.value)
    assert len(str(excinfo.value)) - len(str(path)) < 150


def test_a_repeated_header_is_one_line_without_a_pandas_warning(tmp_path: Path, tiny: DigitData) -> None:
    lines = _text(tiny).splitlines()
    path = tmp_path / "train.csv"
    path.write_text("\n".join([*lines[:31], lines[0], *lines[31:]]) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(LenetError, match=r"train.csv: line 32: the header row again"):
            load_data(path)
    assert not caught


def test_a_mid_file_text_cell_gives_no_dtype_warning(tmp_path: Path, tiny: DigitData) -> None:
    # pandas reads in chunks: a text cell far down a column warns of "mixed types" before our line.
    lines = csv_text(tiny.train_images, tiny.train_labels).splitlines() * 60
    lines = [lines[0], *[line for line in lines if not line.startswith("label")]]
    lines[30_000] = "x" + lines[30_000][1:]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(LenetError, match=r"line 30001: column 'label' is 'x"):
            load_data(path)
    assert not [w for w in caught if "DtypeWarning" in w.category.__name__]


def test_gzip_compressed_csvs_are_read(tmp_path: Path, tiny: DigitData) -> None:
    directory = tmp_path / "kaggle"
    directory.mkdir()
    (directory / "train.csv.gz").write_bytes(gzip.compress(_text(tiny, 600).encode()))
    (directory / "test.csv.gz").write_bytes(gzip.compress(csv_text(tiny.test_images).encode()))
    for data in (load_data(directory), load_data(directory / "train.csv.gz", test=directory / "test.csv.gz")):
        np.testing.assert_array_equal(data.train_labels, tiny.train_labels)
        np.testing.assert_array_equal(data.test_images, tiny.test_images)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(_text(tiny).encode())[:300])
    with pytest.raises(LenetError, match="broken.csv.gz: not a valid gzip file"):
        load_data(broken)


def test_other_binary_files_are_named_not_quoted(tmp_path: Path, tiny: DigitData) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"\x00\x01\x02" * 5000)
    with pytest.raises(LenetError, match=r"train.csv: binary data, not a CSV text file; expected a CSV .*, or a .zip$"):
        load_data(path)
