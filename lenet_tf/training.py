"""The one training protocol of the package.

Its defaults are the reference study's: batch 32, up to 100 epochs, ``EarlyStopping(monitor=
"val_accuracy", mode="max", patience=5, restore_best_weights=True)``, explicit seeds, a tqdm bar
over epochs. The flagship ensemble adds, each as an option of :class:`TrainConfig`: random
shifts/rotations/zoom of the training images, a learning-rate schedule (cosine or
reduce-on-plateau), a tf.data input pipeline, ``steps_per_execution``, and :func:`refit` on all
labeled data for a fixed number of epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers
from tqdm.keras import TqdmCallback

from . import interrupts
from .data import IMAGE_SIDE, Split, prepare
from .errors import LenetError

# TrainConfig and its constants live with the other options (re-exported: `from lenet_tf.training
# import TrainConfig` is the public name).
from .options import AUGMENT_ROTATION, AUGMENT_SHIFT, AUGMENT_ZOOM, TrainConfig

PREDICT_BATCH = 1024
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 2


@dataclass
class FitResult:
    """What one training produced: the history and the figures of the kept (restored best or last) epoch."""

    history: dict[str, list[float]]
    best_epoch: int  # 1-based: the epoch whose weights the model keeps
    epochs_run: int
    train_accuracy: float  # training accuracy reported by Keras at the best epoch
    val_accuracy: float | None  # validation accuracy of the kept weights; None after refit
    seconds: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight initialisation, shuffling, dropout)."""
    keras.utils.set_random_seed(int(seed))


def early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    """The reference protocol's early stopping on ``config.monitor``, restoring the best epoch's
    weights (:func:`fit` uses it only with ``restore_best``; with final weights every epoch runs)."""
    mode = "max" if config.monitor.endswith("accuracy") else "min"
    return keras.callbacks.EarlyStopping(
        monitor=config.monitor, mode=mode, patience=config.patience, restore_best_weights=config.restore_best
    )


def augmentation(
    seed: int = 0, *, shift: float = AUGMENT_SHIFT, rotation: float = AUGMENT_ROTATION, zoom: float = AUGMENT_ZOOM
) -> keras.Sequential:
    """The random training-time transformations (identity at inference): shift by up to ``shift``
    of the side, rotate by up to ``rotation`` degrees, zoom by up to ``zoom``, each either way."""
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    return keras.Sequential(
        [
            layers.RandomTranslation(shift, shift, seed=seed, **fill),
            layers.RandomRotation(rotation / 360.0, seed=seed + 1, **fill),  # Keras: a fraction of a turn
            layers.RandomZoom(zoom, seed=seed + 2, **fill),
        ],
        name="augmentation",
    )


def config_augmentation(config: TrainConfig, seed: int) -> keras.Sequential:
    """:func:`augmentation` at ``config``'s strengths."""
    return augmentation(seed, shift=config.augment_shift, rotation=config.augment_rotation, zoom=config.augment_zoom)


@keras.saving.register_keras_serializable(package="lenet_tf")
class SmoothedCrossentropy(keras.losses.Loss):
    """Keras' categorical cross-entropy with ``label_smoothing``, on the package's integer labels
    (Keras 3's sparse cross-entropy has no smoothing). Registered, so saved members load."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _trainer(model: keras.Model, config: TrainConfig, seed: int) -> keras.Model:
    """The model that ``fit`` runs: ``model`` itself, or ``model`` behind the augmentation layers.

    Wrapping (rather than building augmentation into the members) keeps the saved members plain
    LeNets; the wrapper shares their weights and their optimizer, so training it trains them.
    """
    if config.learning_rate is not None:
        if not isinstance(model.optimizer.learning_rate, keras.Variable):
            raise LenetError("--learning-rate cannot replace this model's learning-rate schedule")
        model.optimizer.learning_rate = float(config.learning_rate)
    optimizer = model.optimizer
    if config.ema_momentum:  # the builder's optimizer, rebuilt to keep the average (Polyak averaging)
        ema = {"use_ema": True, "ema_momentum": float(config.ema_momentum)}
        optimizer = type(optimizer).from_config({**optimizer.get_config(), **ema})
    elif not config.augment and config.steps_per_execution == 1 and not config.label_smoothing:
        return model
    trainer = model
    if config.augment:
        shape = (IMAGE_SIDE, IMAGE_SIDE, 1)
        layers_ = [keras.Input(shape=shape), config_augmentation(config, seed), model]
        trainer = keras.Sequential(layers_, name=f"{model.name}_trainer")
    trainer.compile(
        optimizer=optimizer,
        loss=SmoothedCrossentropy(config.label_smoothing) if config.label_smoothing else model.loss,
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )
    return trainer


class CosineToZero(keras.callbacks.Callback):
    """Cosine decay of the optimizer's learning rate from its current value to 0, per step, over
    the whole fit (``keras.optimizers.schedules.CosineDecay``): 0 after the last step, where an
    epoch-wise rule would stop one epoch short of it."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        if not isinstance(optimizer.learning_rate, keras.Variable):
            raise LenetError("the cosine schedule cannot replace this model's own learning-rate schedule")
        steps = self.params.get("steps")
        if not steps:
            raise LenetError("the cosine schedule needs a known number of steps per epoch")
        base = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        total = self.params["epochs"] * steps
        optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(base, decay_steps=total)


def _schedule(model: keras.Model, config: TrainConfig) -> list[keras.callbacks.Callback]:
    if config.lr_schedule == "cosine":
        return [CosineToZero()]
    if config.lr_schedule == "plateau":
        mode = "max" if config.monitor.endswith("accuracy") else "min"
        return [
            keras.callbacks.ReduceLROnPlateau(
                monitor=config.monitor, mode=mode, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE, min_lr=1e-6
            )
        ]
    return []


def _inputs(
    x: np.ndarray, y: np.ndarray, config: TrainConfig, seed: int, *, training: bool
) -> tuple[Any, Any, dict[str, Any]]:
    """``(x, y, fit keyword arguments)`` for the configured input pipeline."""
    if config.input_pipeline == "numpy":
        # Validation has no gradient step, so it runs in large batches: at batch 32 it costs as
        # many steps as a third of an epoch's training (and 30x the training of a tiny subset).
        options = {"batch_size": config.batch_size, "shuffle": True, "validation_batch_size": PREDICT_BATCH}
        return x, y, options if training else {}
    import tensorflow as tf  # the tf.data pipeline is TensorFlow's own

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if training:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size if training else PREDICT_BATCH).prefetch(tf.data.AUTOTUNE)
    return dataset, None, {"shuffle": False} if training else {}  # the dataset shuffles itself


class InterruptCheck(keras.callbacks.Callback):
    """Stops a fit at the end of the epoch when a Ctrl-C was swallowed inside Keras or TensorFlow.

    Only an epoch hook: a batch hook would make Keras wait for every batch's logs.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        interrupts.check()


def _fit_callbacks(
    model: keras.Model,
    config: TrainConfig,
    stops: bool,
    progress: bool,
    extra: list[keras.callbacks.Callback] | None,
) -> list[keras.callbacks.Callback]:
    """The callbacks of one fit, in the order they must run."""
    # With a weight average, its weights are swapped in at every epoch's end *before* early stopping
    # looks, so validation, the best weights kept and the last weights are all the average's.
    ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum else []
    stopping = [early_stopping(config)] if stops else []
    bar = [TqdmCallback(verbose=0, desc=model.name, leave=False)] if progress else []
    return [*ema, *stopping, *_schedule(model, config), *bar, *(extra or []), InterruptCheck()]


HISTORY_SUFFIX = "_history.csv"
TENSORBOARD_DIR = "tensorboard"


def log_callbacks(directory: str | Path, stem: str, config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Keras' own loggers for one training saved as ``directory/stem.keras``: its per-epoch history
    as CSV (``stem_history.csv``, always: readable while the fit runs) and, with
    ``config.tensorboard``, TensorBoard logs in ``directory/tensorboard/stem``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    logs: list[keras.callbacks.Callback] = [keras.callbacks.CSVLogger(str(directory / f"{stem}{HISTORY_SUFFIX}"))]
    if config.tensorboard:
        logs.append(keras.callbacks.TensorBoard(log_dir=str(directory / TENSORBOARD_DIR / stem)))
    return logs


def fit(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
) -> FitResult:
    """Fit a compiled model on prepared arrays with the package's protocol.

    ``x_*`` are float32 (N, 28, 28, 1) from :func:`lenet_tf.data.prepare`. The model ends with the
    weights of its best validation epoch (early stopping), or with ``config.restore_best`` False
    trains all ``config.epochs`` and keeps the last. ``initial_epoch`` continues an earlier training (as
    Hyperband does) up to ``config.epochs``; the result's epochs then count from the first one.
    Without validation data (``x_val=None``, see :func:`refit`) it trains ``config.epochs``
    epochs and keeps the last weights.
    """
    config.validate()
    set_seed(seed)
    trainer = _trainer(model, config, seed)
    validated = x_val is not None
    # With final weights (restore_best False) every epoch runs: the validation images then
    # choose neither the weights nor when to stop.
    all_callbacks = _fit_callbacks(model, config, validated and config.restore_best, progress, callbacks)
    x, y, options = _inputs(x_train, y_train, config, seed, training=True)
    if validated:
        vx, vy, _ = _inputs(x_val, y_val, config, seed, training=False)
        options["validation_data"] = vx if vy is None else (vx, vy)
    start = time.perf_counter()
    with interrupts.as_interruption():  # TensorFlow's tracing can turn a Ctrl-C into a RuntimeError
        history = trainer.fit(
            x, y, epochs=config.epochs, initial_epoch=initial_epoch, callbacks=all_callbacks, verbose=0, **options
        )
    seconds = time.perf_counter() - start
    logs = {key: [float(v) for v in values] for key, values in history.history.items()}
    logs.pop("learning_rate", None)  # keep the history's keys the metrics' alone
    return _fit_result(logs, config, validated, initial_epoch, seconds, seed)


def _fit_result(
    logs: dict[str, list[float]], config: TrainConfig, validated: bool, initial_epoch: int, seconds: float, seed: int
) -> FitResult:
    """The :class:`FitResult` of a history: the kept epoch is the last one, or the best monitored one."""
    monitored = logs[config.monitor] if validated else logs["accuracy"]
    if not validated or not config.restore_best:
        best = len(monitored) - 1  # the weights kept are the last epoch's
    else:
        best = int(np.argmax(monitored) if config.monitor.endswith("accuracy") else np.argmin(monitored))
    return FitResult(
        history=logs,
        best_epoch=initial_epoch + best + 1,
        epochs_run=initial_epoch + len(monitored),
        train_accuracy=logs["accuracy"][best],
        val_accuracy=logs["val_accuracy"][best] if validated else None,
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
    callbacks: list[keras.callbacks.Callback] | None = None,
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
        callbacks=callbacks,
    )
    return model, result


def refit(
    builder: Callable[[], keras.Model],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> tuple[keras.Model, FitResult]:
    """Build a fresh model and train it on all of ``images`` (uint8) for exactly ``epochs`` epochs,
    with ``config``'s batch size, augmentation and schedule (compressed to ``epochs``): the
    "retrain on all labeled data with the epoch count found on the validation split" step."""
    config = replace(config, epochs=int(epochs)).validate()
    set_seed(seed)
    model = builder()
    result = fit(
        model, prepare(images), labels, None, None, config=config, seed=seed, progress=progress, callbacks=callbacks
    )
    return model, result


def predict_proba(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int = 1024,
    *,
    tta: int = 0,
    seed: int = 0,
    augment: TrainConfig | None = None,
) -> np.ndarray:
    """Class probabilities (N, 10) for uint8 (N, 28, 28) images.

    ``tta`` > 0 averages them with those of ``tta`` randomly shifted/rotated/zoomed copies
    (test-time augmentation seeded by ``seed``, at the strengths of ``augment``, the model's
    training configuration; the package's default strengths when it is None).
    """
    x = prepare(images)
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if tta > 0:
        augment_layers = config_augmentation(augment or TrainConfig(), seed)  # TrainConfig(): the defaults
        for _ in range(tta):
            batches = range(0, len(x), batch_size)
            shifted = np.concatenate(
                [keras.ops.convert_to_numpy(augment_layers(x[i : i + batch_size], training=True)) for i in batches]
            )
            probabilities += np.asarray(model.predict(shifted, batch_size=batch_size, verbose=0))
        probabilities /= tta + 1
    return probabilities


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))


def members_together(
    builder: Callable[[], keras.Model], config: TrainConfig, seeds: list[int]
) -> tuple[keras.Model, list[keras.Model]]:
    """One compiled graph whose branches are ``len(seeds)`` models of ``builder`` (each built
    with its seed) on a shared input, behind the augmentation when ``config.augment``.

    The branches share no weights and the loss is their sum, so each member gets exactly its
    own gradient. Returns the joint model and the (plain, saveable) members.
    """
    # The joint graph trains on numpy arrays with the builder's loss (and, as documented, every
    # epoch with the last weights kept): refuse the options it would otherwise ignore.
    if config.lr_schedule == "plateau":
        raise LenetError("members trained together take lr_schedule constant or cosine, not plateau")
    ignored = [
        n
        for n in ("label_smoothing", "input_pipeline", "ema_momentum")
        if getattr(config, n) != getattr(TrainConfig, n)
    ]
    if ignored:
        raise LenetError(f"members trained together cannot honour {', '.join(ignored)}: leave them at their defaults")
    models = []
    for index, seed in enumerate(seeds):
        set_seed(seed)
        model = builder()
        model.name = f"{model.name}_{index + 1}"  # a graph's layers need distinct names
        models.append(model)
    set_seed(seeds[0])
    inputs = keras.Input(shape=(IMAGE_SIDE, IMAGE_SIDE, 1))
    features = config_augmentation(config, seeds[0])(inputs) if config.augment else inputs
    joint = keras.Model(inputs, [model(features) for model in models], name="members_together")
    # A fresh copy of the members' own optimizer (SGD for the classic LeNet-5, Adam for most).
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(models[0].optimizer))
    if config.learning_rate is not None:
        optimizer.learning_rate = float(config.learning_rate)
    joint.compile(
        optimizer=optimizer,
        loss=[models[0].loss] * len(models),
        metrics=[["accuracy"] for _ in models],
        steps_per_execution=config.steps_per_execution,
    )
    return joint, models


def train_together(
    builder: Callable[[], keras.Model],
    split: Split,
    *,
    members: int,
    config: TrainConfig = TrainConfig(),
    seeds: list[int] | None = None,
    progress: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> tuple[list[keras.Model], list[FitResult]]:
    """Train ``members`` models of ``builder`` at once, as the branches of one graph
    (:func:`members_together`): every step runs all members on the same (augmented) batch, and
    one larger graph keeps the cores busier than several small ones. All members run
    ``config.epochs`` epochs (no early stopping: a joint stop would cut every member at once)
    and keep their last weights; each result records its best validation epoch too.
    """
    config.validate()
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise LenetError(f"members must be an integer ≥ 1, got {members!r}")
    seeds = list(range(members)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != members:
        raise LenetError(f"{members} members need {members} seeds, got {len(seeds)}")
    joint, models = members_together(builder, config, seeds)
    all_callbacks = _schedule(joint, config)
    if progress:
        all_callbacks.append(TqdmCallback(verbose=0, desc=f"{members} members", leave=False))
    all_callbacks.extend(callbacks or [])
    x_val, y_val = prepare(split.x_val), split.y_val
    start = time.perf_counter()
    history = joint.fit(
        prepare(split.x_train), [split.y_train] * members, batch_size=config.batch_size, epochs=config.epochs,
        validation_data=(x_val, [y_val] * members), validation_batch_size=PREDICT_BATCH, shuffle=True,
        callbacks=all_callbacks, verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    results = []
    for model, seed in zip(models, seeds, strict=True):
        # Keras names each output's metrics after its branch, the member's model name, except
        # a single output's, which keep the plain names.
        branch = "" if members == 1 else f"{model.name}_"
        logs = {
            f"{prefix}{key}": [float(v) for v in history.history[f"{prefix}{branch}{key}"]]
            for prefix in ("", "val_")
            for key in ("accuracy", "loss")
        }
        best = int(np.argmax(logs["val_accuracy"]))
        results.append(
            FitResult(
                history=logs,
                best_epoch=best + 1,
                epochs_run=len(logs["accuracy"]),
                train_accuracy=logs["accuracy"][-1],
                val_accuracy=logs["val_accuracy"][-1],  # the kept (last) weights'
                seconds=seconds / members,
                seed=seed,
                extra={"best_val_accuracy": logs["val_accuracy"][best], "trained_together": members},
            )
        )
    return models, results
