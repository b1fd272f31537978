"""Shared fixtures: tiny real digits, CSV writers, a finished tiny run, the shared Kaggle zip (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")  # the figures are files; the tests never need a window

from lenet_tf.data import DigitData, load_embedded_sample  # noqa: E402

SHARED_ZIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "digit-recognizer.zip"


@pytest.fixture(scope="session")
def sample() -> DigitData:
    """The embedded 5,000-digit MNIST sample (4,000 labeled train + 1,000 labeled test)."""
    return load_embedded_sample()


@pytest.fixture(scope="session")
def tiny(sample: DigitData) -> DigitData:
    """600 labeled + 50 test digits: enough for 1-epoch tests."""
    return DigitData(
        sample.train_images[:600],
        sample.train_labels[:600],
        sample.test_images[:50],
        sample.test_labels[:50],
        source="tiny test digits",
    )


@pytest.fixture(scope="session")
def wide_run(tiny: DigitData, tmp_path_factory: pytest.TempPathFactory):
    """A finished run trained once for the session: two wide LeNet-5 members, one epoch each, on the
    tiny digits (deployment split). ``(out, result)``: the directory given to run_training and what
    it returned. Tests only read it; one that changes a run copies it first (shutil.copytree)."""
    from lenet_tf.pipeline import JobSpec, run_training
    from lenet_tf.training import TrainConfig

    out = tmp_path_factory.mktemp("wide_run") / "run"
    spec = JobSpec(model="lenet5-wide", members=2, train=TrainConfig(epochs=1, batch_size=64, patience=1))
    return out, run_training(spec, out, data=tiny, progress=False, echo=lambda _: None)


def csv_text(images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """Kaggle-format CSV text for uint8 images (and labels)."""
    pixels = images.reshape(len(images), -1)
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = [",".join(map(str, row)) for row in pixels]
    if labels is not None:
        header = "label," + header
        rows = [f"{label}," + row for label, row in zip(labels, rows, strict=True)]
    return header + "\n" + "\n".join(rows) + "\n"


@pytest.fixture
def kaggle_dir(tmp_path: Path, tiny: DigitData) -> Path:
    """A directory with train.csv and test.csv made from the tiny digits."""
    directory = tmp_path / "kaggle"
    directory.mkdir()
    (directory / "train.csv").write_text(csv_text(tiny.train_images, tiny.train_labels))
    (directory / "test.csv").write_text(csv_text(tiny.test_images))
    return directory


@pytest.fixture
def shared_zip() -> Path:
    if not SHARED_ZIP.is_file():
        pytest.skip(f"shared data not present at {SHARED_ZIP}")
    return SHARED_ZIP
