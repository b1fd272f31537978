"""The weight average (``ema_momentum``): what validation scores is what the member keeps."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_tf.data import prepare, split_data
from lenet_tf.errors import LenetError
from lenet_tf.models import bn_lenet5
from lenet_tf.training import TrainConfig, train

EPOCHS = 2  # 2 × 7 steps of 64 digits: the 0.95 average still lags the last weights


def _train(tiny, **change):
    # A constant learning rate and a short average: the average then lags the last weights visibly.
    config = TrainConfig(epochs=EPOCHS, batch_size=64, **change)
    split = split_data(tiny, "deployment")
    model, result = train(bn_lenet5, split, config=config, seed=3, progress=False)
    _, accuracy = model.evaluate(prepare(split.x_val), split.y_val, verbose=0)
    return model, result, accuracy


@pytest.mark.parametrize("stopping", [{"restore_best": False}, {"patience": 1}], ids=["final-weights", "early-stop"])
def test_the_average_is_validated_and_kept(tiny, stopping) -> None:
    plain, _, _ = _train(tiny, **stopping)
    model, result, accuracy = _train(tiny, ema_momentum=0.95, **stopping)
    # The member keeps the average, not the last step's weights of the same training...
    differences = [np.abs(a - b).max() for a, b in zip(model.get_weights(), plain.get_weights(), strict=True)]
    assert max(differences) > 1e-3
    # ...and the validation accuracy recorded for the epoch it keeps is that of the weights it keeps.
    assert result.val_accuracy == pytest.approx(accuracy, abs=1e-6)


def test_momentum_is_bounded() -> None:
    with pytest.raises(LenetError, match=r"^ema_momentum must be a number in \[0, 1\), got 1.0$"):
        TrainConfig(ema_momentum=1.0).validate()
