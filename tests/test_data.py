from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import csv_text

from lenet_tf.data import (
    DigitData,
    load_data,
    parse_digits_csv,
    prepare,
    read_competition_zip,
    split_data,
    subsample,
)
from lenet_tf.errors import LenetError

HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def _row(label: int | str = 3, pixel: int | str = 0, at: int = 0) -> str:
    pixels = ["0"] * 784
    pixels[at] = str(pixel)
    return f"{label}," + ",".join(pixels)


def _parse(text: str, labeled: bool = True):
    return parse_digits_csv(text.encode(), "train.csv", labeled=labeled)


def test_parses_valid_csv_to_uint8_images(tiny: DigitData) -> None:
    images, labels = _parse(csv_text(tiny.train_images[:20], tiny.train_labels[:20]))
    assert images.dtype == np.uint8 and images.shape == (20, 28, 28)
    np.testing.assert_array_equal(images, tiny.train_images[:20])
    np.testing.assert_array_equal(labels, tiny.train_labels[:20])


def test_crlf_and_bom_are_accepted() -> None:
    text = "\ufeff" + HEADER + "\r\n" + _row(7, 255, 5) + "\r\n"
    images, labels = _parse(text)
    assert labels.tolist() == [7] and images[0, 0, 5] == 255


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "train.csv: the file is empty"),
        (HEADER + "\n", "train.csv: the file has a header but no data rows"),
        (
            HEADER.replace("pixel1,", "pixle1,") + "\n" + _row(),
            "line 1: header column 3 is 'pixle1', expected 'pixel1'",
        ),
        (HEADER + ",extra\n" + _row(), "line 1: the header has 786 columns, expected 785"),
        (HEADER + "\n" + _row() + "\n" + _row()[:-2], "line 3: 784 fields, expected 785"),
        (HEADER + "\n" + _row() + ",0", "line 2: 786 fields, expected 785"),
        (HEADER + "\n" + _row() + "\n\n" + _row(), "line 3: 1 fields, expected 785"),
        (HEADER + "\n" + _row(pixel=256, at=17), "line 2: column 'pixel17' is 256, expected an integer 0-255"),
        (
            HEADER + "\n" + _row() + "\n" + _row(pixel=-1, at=3),
            "line 3: column 'pixel3' is -1, expected an integer 0-255",
        ),
        (HEADER + "\n" + _row(pixel="0.5", at=9), "line 2: column 'pixel9' is '0.5', not an integer"),
        (HEADER + "\n" + _row(pixel="abc", at=2), "line 2: column 'pixel2' is 'abc', not an integer"),
        (HEADER + "\n" + _row(pixel="", at=4), "line 2: column 'pixel4' is missing"),
        (HEADER + "\n" + _row(label=10), "line 2: column 'label' is 10, expected a digit 0-9"),
        (HEADER + "\n" + _row(label=""), "line 2: column 'label' is missing"),
    ],
)
def test_each_validation_error_names_file_line_and_column(text: str, message: str) -> None:
    with pytest.raises(LenetError) as excinfo:
        _parse(text)
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("train.csv")
    assert "\n" not in str(excinfo.value)


def test_test_csv_header_has_no_label() -> None:
    with pytest.raises(LenetError, match="header column 1 is 'label', expected 'pixel0'"):
        _parse(HEADER + "\n" + _row(), labeled=False)
    images, labels = _parse(HEADER.split(",", 1)[1] + "\n" + "0," * 783 + "9", labeled=False)
    assert labels is None and images[0, 27, 27] == 9


def test_load_directory_zip_and_explicit_csv(kaggle_dir: Path, tmp_path: Path, tiny: DigitData) -> None:
    from_dir = load_data(kaggle_dir)
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name in ("train.csv", "test.csv"):
            handle.write(kaggle_dir / name, name)
    from_zip = load_data(archive)
    from_csv = load_data(kaggle_dir / "train.csv", test=kaggle_dir / "test.csv")
    for data in (from_dir, from_zip, from_csv):
        np.testing.assert_array_equal(data.train_images, tiny.train_images)
        np.testing.assert_array_equal(data.test_images, tiny.test_images)
        assert data.test_labels is None
    assert from_dir.fingerprint() == from_zip.fingerprint()


def test_missing_sources_and_bad_zip(tmp_path: Path) -> None:
    with pytest.raises(LenetError, match="no such file or directory"):
        load_data(tmp_path / "nope.zip")
    with pytest.raises(LenetError, match="holds neither train.csv nor digit-recognizer.zip"):
        load_data(tmp_path)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(LenetError, match="not a valid zip file"):
        read_competition_zip(bad)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as handle:
        handle.writestr("readme.txt", "x")
    with pytest.raises(LenetError, match="the zip holds no train.csv"):
        read_competition_zip(empty)


def test_embedded_sample_is_default_without_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = load_data()
    assert "embedded MNIST sample" in data.source
    assert data.train_images.shape == (4000, 28, 28) and data.test_images.shape == (1000, 28, 28)
    assert np.bincount(data.test_labels).tolist() == [100] * 10


def _balanced(n: int) -> DigitData:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 251  # something to tell rows apart
    return DigitData(images, labels, None, None, source="synthetic")


def test_split_sizes_of_the_two_protocols_on_42000_rows() -> None:
    data = _balanced(42_000)
    evaluation = split_data(data, "evaluation", seed=0)
    assert evaluation.sizes() == {"train": 25_200, "val": 8_400, "test": 8_400}
    deployment = split_data(data, "deployment", seed=0)
    assert deployment.sizes() == {"train": 29_400, "val": 12_600}


def test_splits_are_stratified_deterministic_and_disjoint() -> None:
    base = _balanced(5_000)
    ids = np.arange(5_000)
    images = base.train_images.copy()
    images[:, 0, 0], images[:, 0, 1] = ids // 256, ids % 256  # each row carries its id
    data = DigitData(images, base.train_labels, None, None, "ids")
    first = split_data(data, "evaluation", seed=3)
    again = split_data(data, "evaluation", seed=3)
    other = split_data(data, "evaluation", seed=4)
    np.testing.assert_array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_train, other.x_train)
    parts = [x[:, 0, 0].astype(int) * 256 + x[:, 0, 1] for x in (first.x_train, first.x_val, first.x_test)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), ids)
    for part, labels in zip(parts, (first.y_train, first.y_val, first.y_test), strict=True):
        np.testing.assert_array_equal(data.train_labels[part], labels)
    overall = np.bincount(data.train_labels, minlength=10) / 5_000
    for labels in (first.y_train, first.y_val, first.y_test):
        share = np.bincount(labels, minlength=10) / len(labels)
        assert np.abs(share - overall).max() < 0.005


def test_unknown_protocol_is_an_error() -> None:
    with pytest.raises(LenetError, match="unknown split protocol 'kfold'"):
        split_data(_balanced(100), "kfold")


def test_subsample_is_stratified_and_checks_size() -> None:
    data = _balanced(2_000)
    small = subsample(data, 500, seed=1)
    assert len(small.train_labels) == 500
    assert (
        np.abs(np.bincount(small.train_labels, minlength=10) / 500 - np.bincount(data.train_labels) / 2000).max() < 0.01
    )
    with pytest.raises(LenetError, match="too small"):
        subsample(data, 5)


def test_prepare_keeps_kaggle_pixels_and_adds_channel() -> None:
    # The models scale their input themselves (their input_scale layer): prepare only shapes it.
    images = np.array([[[0, 255] + [51] * 26] * 28], dtype=np.uint8)
    prepared = prepare(images)
    assert prepared.dtype == np.float32 and prepared.shape == (1, 28, 28, 1)
    assert prepared[0, 0, 0, 0] == 0.0 and prepared[0, 0, 1, 0] == 255.0 and prepared[0, 0, 2, 0] == 51.0
    with pytest.raises(LenetError, match="expected images of shape"):
        prepare(np.zeros((2, 32, 32), dtype=np.uint8))


def test_keras_mnist_without_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/mnist.npz: None -- [Errno -3]")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(LenetError, match=r"--data mnist: cannot download MNIST .*use --data sample"):
        load_data("mnist")
