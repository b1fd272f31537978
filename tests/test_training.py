from __future__ import annotations

import numpy as np
import pytest

from lenet_tf.data import prepare, split_data
from lenet_tf.errors import LenetError
from lenet_tf.models import classic_lenet5, standard_lenet
from lenet_tf.training import TrainConfig, accuracy, compiled_trainer, predict_proba, train


def test_fit_reports_the_restored_best_epoch(tiny) -> None:
    split = split_data(tiny, "deployment", seed=0)
    model, result = train(classic_lenet5, split, config=TrainConfig(epochs=4, patience=1), seed=1, progress=False)
    val = result.history["val_accuracy"]
    assert result.epochs_run == len(val) <= 4
    assert result.best_epoch == int(np.argmax(val)) + 1
    assert result.val_accuracy == max(val)
    assert result.train_accuracy == result.history["accuracy"][result.best_epoch - 1]
    # restore_best_weights: the returned model is the best epoch's, not the last one's.
    assert accuracy(predict_proba(model, split.x_val), split.y_val) == pytest.approx(result.val_accuracy, abs=1e-6)
    assert result.seconds > 0 and result.seed == 1


def test_final_weights_keep_the_last_epoch(tiny) -> None:
    split = split_data(tiny, "deployment", seed=0)
    config = TrainConfig(epochs=3, patience=3, learning_rate=0.05, restore_best=False)
    model, result = train(classic_lenet5, split, config=config, seed=1, progress=False)
    val = result.history["val_accuracy"]
    assert result.best_epoch == result.epochs_run == len(val) == 3
    assert result.val_accuracy == val[-1] and result.train_accuracy == result.history["accuracy"][-1]
    assert accuracy(predict_proba(model, split.x_val), split.y_val) == pytest.approx(val[-1], abs=1e-6)
    assert config.to_dict()["restore_best"] is False and TrainConfig().to_dict()["restore_best"] is True


def test_same_seed_same_model_different_seed_different(tiny) -> None:
    split = split_data(tiny, "deployment", seed=0)
    config = TrainConfig(epochs=1)
    first, _ = train(standard_lenet, split, config=config, seed=5, progress=False)
    again, _ = train(standard_lenet, split, config=config, seed=5, progress=False)
    other, _ = train(standard_lenet, split, config=config, seed=6, progress=False)
    x = prepare(split.x_val[:32])
    np.testing.assert_allclose(first.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6)
    assert not np.allclose(first.predict(x, verbose=0), other.predict(x, verbose=0), atol=1e-4)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(epochs=0), "^epochs must be an integer ≥ 1"),
        (TrainConfig(batch_size=-3), "^batch_size must be an integer ≥ 1"),
        (TrainConfig(restore_best="no"), "restore_best must be true or false"),
        (TrainConfig(patience=-1), "^patience must be an integer ≥ 0"),
        (TrainConfig(monitor="loss"), "monitor must be one of val_accuracy, val_loss"),
        (TrainConfig(augment_rotation=-1), r"^augment_rotation must be a number in \[0, 180\], got -1"),
        (TrainConfig(augment_zoom=True), r"^augment_zoom must be a number in \[0, 0.9\], got True"),
        (TrainConfig(augment_shift="0.1"), r"^augment_shift must be a number in \[0, 0.5\], got '0.1'"),
    ],
)
def test_bad_training_configuration(config: TrainConfig, message: str) -> None:
    with pytest.raises(LenetError, match=message):
        config.validate()


def test_augmentation_strengths_reach_the_layers_and_the_record() -> None:
    config = TrainConfig(augment=True, augment_shift=0.05, augment_rotation=9.0, augment_zoom=0.2)
    trainer = compiled_trainer(standard_lenet(), config, seed=0)
    layers = {layer.__class__.__name__: layer for layer in trainer.layers[0].layers}
    assert layers["RandomTranslation"].height_factor == 0.05 and layers["RandomTranslation"].width_factor == 0.05
    assert layers["RandomRotation"].factor == pytest.approx((-9.0 / 360, 9.0 / 360))
    assert layers["RandomZoom"].height_factor == 0.2
    recorded = config.to_dict()
    assert (recorded["augment_shift"], recorded["augment_rotation"], recorded["augment_zoom"]) == (0.05, 9.0, 0.2)
    # Defaults are recorded too: a later change of a default cannot resume a run trained the old way.
    assert TrainConfig(augment=True).to_dict()["augment_rotation"] == 14.4


def test_accuracy() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert accuracy(probabilities, np.array([0, 1, 1])) == pytest.approx(2 / 3)
