"""The cosine learning-rate schedule and members trained together (issue 16, defect 6)."""

from __future__ import annotations

from dataclasses import fields, replace

import keras
import numpy as np
import pytest

from lenet_tf.data import prepare, split_data
from lenet_tf.errors import LenetError
from lenet_tf.models import classic_lenet5, wide_lenet5
from lenet_tf.training import TOGETHER_HONOURS, TrainConfig, check_together, fit, members_together, train_together


class _Rates(keras.callbacks.Callback):
    """The learning rate each training step uses (read before the step)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


@pytest.mark.parametrize("pipeline", ["numpy", "tfdata"])
def test_cosine_schedule_decays_per_step_to_zero(tiny, pipeline: str) -> None:
    split = split_data(tiny, "deployment", seed=0)
    model = classic_lenet5()
    base = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    rates = _Rates()
    config = TrainConfig(epochs=2, batch_size=100, lr_schedule="cosine", input_pipeline=pipeline)
    fit(model, prepare(split.x_train), split.y_train, None, None, config=config, progress=False, callbacks=[rates])
    steps = 2 * int(np.ceil(len(split.y_train) / 100))
    assert len(rates.rates) == steps
    assert rates.rates[0] == pytest.approx(base)
    assert all(later < earlier for earlier, later in zip(rates.rates, rates.rates[1:], strict=False))
    # After the last step the rate is 0, not the 1.1 % (here: 50 %) an epoch-wise rule stops at.
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("members", [1, 2])
def test_train_together_any_number_of_members(tiny, members: int) -> None:
    split = split_data(tiny, "deployment", seed=0)
    models, results = train_together(
        classic_lenet5, split, members=members, config=TrainConfig(epochs=1, batch_size=64, restore_best=False),
        progress=False,
    )
    assert len(models) == len(results) == members
    for result in results:
        assert set(result.history) == {"accuracy", "loss", "val_accuracy", "val_loss"}
        assert result.epochs_run == 1 and 0 <= result.val_accuracy <= 1
        assert result.extra["trained_together"] == members


@pytest.mark.parametrize("change", [{"label_smoothing": 0.1}, {"input_pipeline": "tfdata"}, {"tensorboard": True}])
def test_members_trained_together_refuse_what_they_cannot_honour(change) -> None:
    """The joint graph used the builder's loss and numpy arrays whatever the config said."""
    with pytest.raises(LenetError, match=f"members trained together cannot honour {next(iter(change))}"):
        members_together(wide_lenet5, TrainConfig(restore_best=False, **change), [0, 1])


def test_members_trained_together_refuse_early_stopping() -> None:
    """They train every epoch and keep the last weights: the default restore_best was ignored."""
    with pytest.raises(LenetError, match="keep the last weights"):
        check_together(TrainConfig())


def _other_value(f) -> object:
    """A valid value of TrainConfig field ``f`` other than its default."""
    spec = f.metadata["option"]
    if spec.choices:
        return next(c for c in spec.choices if c != f.default)
    if spec.kind == "bool":
        return not f.default
    if f.default is None:
        return 0.5
    return f.default + 1 if spec.kind == "int" else (spec.low or 0) / 2 + f.default / 2 + 0.01


def test_every_fit_option_is_honoured_together_or_refused() -> None:
    """An allow-list: an option added to TrainConfig later is refused by the joint graph until it is
    made to work there, instead of being silently ignored (issue 29, item 3)."""
    base = TrainConfig(restore_best=False)
    for f in fields(TrainConfig):
        if f.name in ("restore_best", "lr_schedule", "patience"):  # checked above / refused by the spec itself
            continue
        changed = replace(base, **{f.name: _other_value(f)})
        if f.name in TOGETHER_HONOURS:
            assert check_together(changed) is changed, f.name
        else:
            with pytest.raises(LenetError, match=f"cannot honour {f.name}"):
                check_together(changed)
