"""The one training protocol of the package (the reference study's).

Batch 32, up to 100 epochs, ``EarlyStopping(monitor="val_accuracy", mode="max", patience=5,
restore_best_weights=True)``, explicit seeds, a tqdm bar over epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
from tqdm.keras import TqdmCallback

from .data import Split, prepare
from .errors import LenetError


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fitted. Defaults are the reference study's protocol."""

    epochs: int = 100
    batch_size: int = 32
    patience: int = 5
    monitor: str = "val_accuracy"

    def validate(self) -> TrainConfig:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "patience" else 1):
                low = 0 if name == "patience" else 1
                raise LenetError(f"--{name.replace('_', '-')} must be an integer ≥ {low}, got {value!r}")
        if self.monitor not in ("val_accuracy", "val_loss"):
            raise LenetError(f"monitor must be val_accuracy or val_loss, got {self.monitor!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    """What one training produced: the history and the figures at the restored best epoch."""

    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    epochs_run: int
    train_accuracy: float  # training accuracy reported by Keras at the best epoch
    val_accuracy: float  # best validation accuracy (the restored weights')
    seconds: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight initialisation, shuffling, dropout)."""
    keras.utils.set_random_seed(int(seed))


def early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    mode = "max" if config.monitor.endswith("accuracy") else "min"
    return keras.callbacks.EarlyStopping(
        monitor=config.monitor, mode=mode, patience=config.patience, restore_best_weights=True
    )


def fit(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
) -> FitResult:
    """Fit a compiled model on prepared arrays with the package's protocol.

    ``x_*`` are float32 (N, 28, 28, 1) from :func:`lenet_tf.data.prepare`. The model ends with the
    weights of its best validation epoch. ``initial_epoch`` continues an earlier training (as
    Hyperband does) up to ``config.epochs``; the result's epochs then count from the first one.
    """
    config.validate()
    set_seed(seed)
    all_callbacks: list[keras.callbacks.Callback] = [early_stopping(config)]
    if progress:
        all_callbacks.append(TqdmCallback(verbose=0, desc=model.name, leave=False))
    all_callbacks.extend(callbacks or [])
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=all_callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logs = {key: [float(v) for v in values] for key, values in history.history.items()}
    monitored = logs[config.monitor]
    best = int(np.argmax(monitored) if config.monitor.endswith("accuracy") else np.argmin(monitored))
    return FitResult(
        history=logs,
        best_epoch=initial_epoch + best + 1,
        epochs_run=initial_epoch + len(monitored),
        train_accuracy=logs["accuracy"][best],
        val_accuracy=logs["val_accuracy"][best],
        seconds=seconds,
        seed=int(seed),
    )


def train(
    builder: Callable[[], keras.Model],
    split: Split,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: bool = True,
) -> tuple[keras.Model, FitResult]:
    """Build a model with ``seed`` and fit it on ``split`` (uint8 images are prepared here)."""
    config.validate()
    set_seed(seed)  # before building: the seed fixes the initial weights too
    model = builder()
    result = fit(
        model,
        prepare(split.x_train),
        split.y_train,
        prepare(split.x_val),
        split.y_val,
        config=config,
        seed=seed,
        progress=progress,
    )
    return model, result


def predict_proba(model: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (N, 10) for uint8 (N, 28, 28) images."""
    return np.asarray(model.predict(prepare(images), batch_size=batch_size, verbose=0))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))
