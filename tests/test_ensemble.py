from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest

from lenet_tf.data import prepare, split_data
from lenet_tf.ensemble import Ensemble, member_seed, train_members
from lenet_tf.errors import LenetError
from lenet_tf.models import classic_lenet5, mlp
from lenet_tf.training import TrainConfig


def _constant_model(logits: list[float]) -> keras.Sequential:
    """A model whose output is softmax(logits) for every image (scaling its input as every model built here does)."""
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255, name="input_scale"), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    kernel, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), np.array(logits, dtype=np.float32)])
    return model


def _softmax(logits: list[float]) -> np.ndarray:
    e = np.exp(np.array(logits) - max(logits))
    return e / e.sum()


def test_ensemble_averages_member_probabilities(tmp_path: Path) -> None:
    a = [3.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    b = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2.0]
    c = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2.5]
    ensemble = Ensemble([_constant_model(a), _constant_model(b), _constant_model(c)])
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    expected = (_softmax(a) + _softmax(b) + _softmax(c)) / 3
    np.testing.assert_allclose(ensemble.predict_proba(images), np.tile(expected, (5, 1)), rtol=1e-5)
    # Soft voting: 2 of 3 members favour 9, and so does the mean.
    assert ensemble.predict(images).tolist() == [9] * 5
    ensemble.save(tmp_path)
    loaded = Ensemble.load(tmp_path)
    assert len(loaded) == 3
    np.testing.assert_allclose(loaded.predict_proba(images), ensemble.predict_proba(images), rtol=1e-6)
    assert len(Ensemble.load(tmp_path, limit=2)) == 2


def test_empty_ensemble_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(LenetError, match="at least one member"):
        Ensemble([])
    with pytest.raises(LenetError, match="no saved members"):
        Ensemble.load(tmp_path)


def test_train_members_resumes_finished_members(tiny, tmp_path: Path) -> None:
    split = split_data(tiny, "deployment")
    config = TrainConfig(epochs=1)
    seen: list[tuple[int, bool]] = []
    first, results = train_members(
        classic_lenet5, split, members=2, directory=tmp_path, seed=7, config=config, progress=False,
        on_member=lambda i, r, resumed: seen.append((i, resumed)),
    )  # fmt: skip
    assert seen == [(0, False), (1, False)]
    assert [r.seed for r in results] == [member_seed(7, 0), member_seed(7, 1)]
    assert results[0].seed != results[1].seed
    seen.clear()
    grown, grown_results = train_members(
        classic_lenet5, split, members=3, directory=tmp_path, seed=7, config=config, progress=False,
        on_member=lambda i, r, resumed: seen.append((i, resumed)),
    )  # fmt: skip
    assert seen == [(0, True), (1, True), (2, False)]
    assert grown_results[0].to_dict() == results[0].to_dict()
    x = split.x_val[:20]
    np.testing.assert_allclose(grown.members[0].predict(prepare(x), verbose=0),
                               first.members[0].predict(prepare(x), verbose=0), atol=1e-6)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "members").iterdir()) == [
        f"member_0{i}{ext}" for i in (1, 2, 3) for ext in (".json", ".keras", "_history.csv")
    ]


def test_members_must_be_positive(tiny, tmp_path: Path) -> None:
    with pytest.raises(LenetError, match="members must be an integer ≥ 1, got 0"):
        train_members(classic_lenet5, split_data(tiny), members=0, directory=tmp_path)


def test_every_member_logs_its_history_and_tensorboard_on_request(tiny, tmp_path: Path) -> None:
    # Issue 29: Keras' own loggers, one history per member beside it; TensorBoard only when asked.
    split = split_data(tiny, "deployment", seed=0)
    config = TrainConfig(epochs=2, patience=5)
    _, results = train_members(mlp, split, members=1, directory=tmp_path / "plain", config=config, progress=False)
    with (tmp_path / "plain" / "members" / "member_01_history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["val_accuracy"]) for r in rows] == pytest.approx(results[0].history["val_accuracy"])
    assert not (tmp_path / "plain" / "members" / "tensorboard").exists()
    logged = TrainConfig(epochs=1, tensorboard=True)
    train_members(mlp, split, members=1, directory=tmp_path / "tb", config=logged, progress=False)
    events = list((tmp_path / "tb" / "members" / "tensorboard" / "member_01").rglob("events.out.tfevents.*"))
    assert events, "TensorBoard wrote no event file"


def test_the_ensemble_is_one_keras_model_that_load_model_opens(tiny, wide_run, tmp_path: Path) -> None:
    """Issue 29: the ensemble as one .keras file a notebook (or Kaggle) opens without lenet_tf and
    calls on Kaggle's pixels as they are."""
    ensemble = Ensemble.load(wide_run[0])  # two trained members (conftest.py), loaded afresh
    assert len(ensemble) == 2
    path = ensemble.export(tmp_path / "ensemble.keras")
    opened = keras.saving.load_model(path)
    pixels = tiny.test_images[:16, :, :, None].astype("float32")  # no /255: the members scale inside
    np.testing.assert_allclose(opened.predict(pixels, verbose=0), ensemble.predict_proba(tiny.test_images[:16]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
