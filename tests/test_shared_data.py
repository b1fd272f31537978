"""Integration on the real Kaggle files (../shared/data/digit-recognizer.zip); skipped when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lenet_tf.cli import main
from lenet_tf.data import load_data, split_data
from lenet_tf.submission import KAGGLE_TEST_ROWS, read_submission

pytestmark = pytest.mark.shared_data


def test_competition_zip_loads_and_splits(shared_zip: Path) -> None:
    data = load_data(shared_zip)
    assert data.train_images.shape == (42_000, 28, 28) and data.test_images.shape == (28_000, 28, 28)
    assert data.train_images.dtype == np.uint8 and set(np.unique(data.train_labels)) == set(range(10))
    assert split_data(data, "evaluation").sizes() == {"train": 25_200, "val": 8_400, "test": 8_400}
    assert split_data(data, "deployment").sizes() == {"train": 29_400, "val": 12_600}


def test_brief_training_writes_a_valid_kaggle_submission(shared_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", "classic", "--data", str(shared_zip), "--max-train", "2000", "--epochs", "2"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    frame = read_submission(out / "submission.csv", expected_rows=KAGGLE_TEST_ROWS)
    assert frame["ImageId"].iloc[-1] == 28_000
    # Two epochs of LeNet-5 on 1,400 images is far above chance; all ten digits get predicted.
    counts = np.bincount(frame["Label"], minlength=10)
    assert (counts > 0).all() and counts.max() < 0.4 * KAGGLE_TEST_ROWS


@pytest.mark.slow
def test_classic_lenet5_learns_the_competition_data(shared_zip: Path) -> None:
    """Accuracy regression guard (``make test-slow``): LeNet-5 on the 29,400-image deployment split
    reached 0.985 validation accuracy in 13 epochs when measured; 8 epochs must give ≥ 0.975."""
    from lenet_tf.models import classic_lenet5
    from lenet_tf.training import TrainConfig, train

    split = split_data(load_data(shared_zip), "deployment")
    _, result = train(classic_lenet5, split, config=TrainConfig(epochs=8), seed=0, progress=False)
    assert result.val_accuracy >= 0.975, result.history["val_accuracy"]
