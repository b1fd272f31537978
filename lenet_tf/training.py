"""The one training protocol of the package.

Its defaults are the reference study's: batch 32, up to 100 epochs, ``EarlyStopping(monitor=
"val_accuracy", mode="max", patience=5, restore_best_weights=True)``, explicit seeds, a tqdm bar
over epochs. The flagship ensemble adds, each as an option of :class:`TrainConfig`: random
shifts/rotations/zoom of the training images, a learning-rate schedule (cosine or
reduce-on-plateau), a tf.data input pipeline, ``steps_per_execution``, and :func:`refit` on all
labeled data for a fixed number of epochs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers
from tqdm.keras import TqdmCallback

from . import interrupts
from .data import IMAGE_SIDE, Split, prepare
from .errors import LenetError
from .metrics import accuracy as accuracy  # its home is metrics (no Keras); this name stays public

# TrainConfig and its constants live with the other options (re-exported: `from lenet_tf.training
# import TrainConfig` is the public name).
from .options import AUGMENT_ROTATION, AUGMENT_SHIFT, AUGMENT_ZOOM, TrainConfig
from .rundir import atomic_write, write_json, write_text

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


def compiled_trainer(model: keras.Model, config: TrainConfig, seed: int) -> keras.Model:
    """The model that :func:`fit` runs: ``model`` itself, or ``model`` behind the augmentation layers,
    compiled for ``config`` (public so that a benchmark times exactly what ``fit`` runs).

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


def fit_inputs(
    x: np.ndarray, y: np.ndarray, config: TrainConfig, seed: int, *, training: bool, resumed: int = 0
) -> tuple[Any, Any, dict[str, Any]]:
    """``(x, y, fit keyword arguments)`` that :func:`fit` passes to ``model.fit`` for the configured
    input pipeline; ``resumed``: the epochs a killed fit of the same training finished."""
    if config.input_pipeline == "numpy":
        # Validation has no gradient step, so it runs in large batches: at batch 32 it costs as
        # many steps as a third of an epoch's training (and 30x the training of a tiny subset).
        options = {"batch_size": config.batch_size, "shuffle": True, "validation_batch_size": PREDICT_BATCH}
        return x, y, options if training else {}
    import tensorflow as tf  # the tf.data pipeline is TensorFlow's own

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if training:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        # Every iterator made draws the next order: a resumed fit draws those of the finished epochs
        # first. Keras 3 makes two an epoch (one as it begins, one ahead as it ends; a test checks it).
        for _ in range(2 * resumed):
            iter(dataset)
    dataset = dataset.batch(config.batch_size if training else PREDICT_BATCH).prefetch(tf.data.AUTOTUNE)
    return dataset, None, {"shuffle": False} if training else {}  # the dataset shuffles itself


class InterruptCheck(keras.callbacks.Callback):
    """Stops a fit at the end of the epoch when a Ctrl-C was swallowed inside Keras or TensorFlow.

    Only an epoch hook: a batch hook would make Keras wait for every batch's logs.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        interrupts.check()


BACKUP_DIR = "backup"  # members/backup/member_XX: the last finished epoch of a member still training
_STATE_FILE = "lenet_tf_state.json"
# What the other callbacks of a fit keep from epoch to epoch, which Keras resets when a fit begins
# and BackupAndRestore does not back up.
_CALLBACK_STATE: tuple[tuple[type, tuple[str, ...]], ...] = (
    (keras.callbacks.EarlyStopping, ("wait", "stopped_epoch", "best", "best_epoch")),
    (keras.callbacks.ReduceLROnPlateau, ("wait", "cooldown_counter", "best")),
    # At an epoch's end the average is in the model and the running weights in the optimizer.
    (keras.callbacks.SwapEMAWeights, ("_ema_weights_in_model",)),
)


def _state_names(callback: keras.callbacks.Callback) -> tuple[str, ...]:
    return next((names for kind, names in _CALLBACK_STATE if isinstance(callback, kind)), ())


def _seed_states(model: keras.Model) -> list[Any]:
    """The states of the model's random seed generators (dropout, augmentation): its variables
    that are not weights, so neither ``save_weights`` nor ``get_weights`` holds them."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value  # numpy scalars, for JSON


def _digests(directory: Path) -> dict[str, str]:
    """SHA-256 of the backup's files (all but the state that names them; no half-written temp file)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name != _STATE_FILE)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if not p.name.startswith(".")}


class FitBackup(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` for one training, completed so that a fit killed after epoch k
    resumes at epoch k + 1 and ends as the uninterrupted fit would have.

    Keras backs up the weights, the optimizer (its learning rate too) and the epoch counter. This adds
    what it leaves out, in ``lenet_tf_state.json`` beside them: the history and seconds of the finished
    epochs (the record needs them all), the random seed generators' states (dropout, augmentation),
    the other callbacks' states (early stopping's patience count, best value and best weights;
    reduce-on-plateau's counters; where the weight average is). The state, written last, names the
    digests of the files it goes with: a backup whose files differ (a kill between two writes) is
    deleted and the training starts afresh, as it did without a backup. :func:`fit` calls
    :meth:`attach`; the backup is deleted when the training ends.
    """

    def __init__(self, directory: str | Path):
        super().__init__(str(directory))
        self.directory = Path(directory)
        self.history: dict[str, list[float]] = {}  # every finished epoch's logs, the restored ones too
        self.seconds = 0.0  # what the restored epochs took
        self._carried: list[keras.callbacks.Callback] = []
        self._state: dict[str, Any] | None = None
        self._attached = False
        self._best_written: dict[int, int] = {}  # callback index -> best epoch whose weights are on disk
        self._started = 0.0

    def attach(self, callbacks: list[keras.callbacks.Callback]) -> int:
        """Carry the states of ``callbacks`` (the fit's others) and return how many epochs the backup
        holds (0: none, or one that does not hold together, deleted here)."""
        self._carried = [callback for callback in callbacks if _state_names(callback)]
        self._state, self._attached = self._read_state(), True
        return int(self._state["epoch"]) if self._state else 0

    def _read_state(self) -> dict[str, Any] | None:
        if not self.directory.is_dir():
            return None
        try:
            state = json.loads((self.directory / _STATE_FILE).read_text(encoding="utf-8"))
            kinds = [type(callback).__name__ for callback in self._carried]
            whole = state["files"] == _digests(self.directory) and state["kinds"] == kinds
        except (OSError, ValueError, KeyError, TypeError):
            whole = False
        if not whole:
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        return state

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._attached:
            self.attach([])
        super().on_train_begin(logs)  # Keras: the weights, the optimizer and the epoch to start at
        self._started = time.perf_counter()
        if self._state is not None:
            self._restore(self._state)

    def _restore(self, state: dict[str, Any]) -> None:
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.seconds = float(state["seconds"])
        for index, (callback, saved) in enumerate(zip(self._carried, state["callbacks"], strict=True)):
            for name, value in saved.items():
                setattr(callback, name, value)
            best = self.directory / f"best_weights_{index}.npz"
            if best.is_file():
                with np.load(best) as arrays:
                    callback.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
                self._best_written[index] = callback.best_epoch
        for variable, value in zip(_seed_states(self.model), state["seeds"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        if state["stopped"]:  # early stopping had ended the fit: no epoch is left to run
            self.model._initial_epoch = self.params["epochs"]  # where Keras' own restore puts the start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)  # Keras: the weights, the optimizer, the epoch counter
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        for index, callback in enumerate(self._carried):
            best = getattr(callback, "best_weights", None)
            if best is not None and self._best_written.get(index) != callback.best_epoch:
                atomic_write(self.directory / f"best_weights_{index}.npz", lambda tmp, w=best: _save_arrays(tmp, w))
                self._best_written[index] = callback.best_epoch
        state = {
            "epoch": epoch + 1,
            "stopped": bool(self.model.stop_training),
            "history": self.history,
            "seconds": self.seconds + time.perf_counter() - self._started,
            "seeds": [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)],
            "kinds": [type(c).__name__ for c in self._carried],
            "callbacks": [{n: _plain(getattr(c, n)) for n in _state_names(c)} for c in self._carried],
            "files": _digests(self.directory),
        }
        write_json(self.directory / _STATE_FILE, state)  # last: it vouches for the files it names

    def on_train_end(self, logs: dict | None = None) -> None:
        super().on_train_end(logs)  # Keras deletes the backup: the training is finished
        self.model._initial_epoch = None  # Keras leaves it set: a later fit of this model would start there
        if self.directory.parent.name == BACKUP_DIR:
            with contextlib.suppress(OSError):
                self.directory.parent.rmdir()  # the members' backup folder, once no member is training


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would add ".npz" to a temp file's name
        np.savez(handle, *arrays)


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
    # A backup comes after the others: it restores their states once they have reset them, and
    # backs up an epoch once they have all seen it (the CSV row is written first).
    backups = [c for c in extra or [] if isinstance(c, FitBackup)]
    others = [c for c in extra or [] if not isinstance(c, FitBackup)]
    return [*ema, *stopping, *_schedule(model, config), *bar, *others, *backups, InterruptCheck()]


def _continue_csv_logs(callbacks: list[keras.callbacks.Callback], epochs: int) -> None:
    """A resumed fit's CSV histories keep the header and the rows of the ``epochs`` the backup holds
    (a kill can fall between a row and its backup) and are appended to, not rewritten."""
    for logger in callbacks:
        if isinstance(logger, keras.callbacks.CSVLogger):
            path = Path(logger.filename)
            if path.is_file():
                write_text(path, "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[: epochs + 1]))
            logger.append = True


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


def member_callbacks(directory: str | Path, stem: str, config: TrainConfig) -> list[keras.callbacks.Callback]:
    """What a run's member ``directory/stem.keras`` trains with: :func:`log_callbacks` and a
    :class:`FitBackup` in ``directory/backup/stem``, so that a killed member resumes after its last
    finished epoch (a member that finished is loaded; one that never backed up starts afresh)."""
    return [*log_callbacks(directory, stem, config), FitBackup(Path(directory) / BACKUP_DIR / stem)]


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
    epochs and keeps the last weights. With a :class:`FitBackup` among ``callbacks`` (see
    :func:`member_callbacks`) a killed fit, run again, resumes after its last finished epoch, and the
    result covers every epoch as if it had never stopped.
    """
    config.validate()
    set_seed(seed)
    trainer = compiled_trainer(model, config, seed)
    validated = x_val is not None
    # With final weights (restore_best False) every epoch runs: the validation images then
    # choose neither the weights nor when to stop.
    all_callbacks = _fit_callbacks(model, config, validated and config.restore_best, progress, callbacks)
    backup = next((c for c in all_callbacks if isinstance(c, FitBackup)), None)
    done = backup.attach(all_callbacks) if backup is not None else 0  # epochs a killed fit finished
    if done:
        _continue_csv_logs(all_callbacks, done)
    x, y, options = fit_inputs(x_train, y_train, config, seed, training=True, resumed=done)
    if validated:
        vx, vy, _ = fit_inputs(x_val, y_val, config, seed, training=False)
        options["validation_data"] = vx if vy is None else (vx, vy)
    start = time.perf_counter()
    with interrupts.as_interruption():  # TensorFlow's tracing can turn a Ctrl-C into a RuntimeError
        history = trainer.fit(
            x, y, epochs=config.epochs, initial_epoch=initial_epoch, callbacks=all_callbacks, verbose=0, **options
        )
    seconds = time.perf_counter() - start
    logged = history.history
    if backup is not None:  # its history has every epoch, those of a killed fit too
        logged, seconds = backup.history, seconds + backup.seconds
    logs = {key: [float(v) for v in values] for key, values in logged.items()}
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
    wrap: Callable[[keras.Model], keras.Model] | None = None,
) -> tuple[keras.Model, FitResult]:
    """Build a model with ``seed`` and fit it on ``split`` (uint8 images are prepared here).

    ``wrap`` makes the model that is fitted from the one built, sharing its weights (robustness's
    adversarial trainer): the training still goes through :func:`fit`, and the built model returns.
    """
    config.validate()
    set_seed(seed)  # before building: the seed fixes the initial weights too
    model = builder()
    result = fit(
        model if wrap is None else wrap(model),
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


# What the joint graph of :func:`members_together` / :func:`train_together` honours. An allow-list,
# so that an option added to TrainConfig later is refused there until someone makes it work, never
# silently ignored. Every member trains all epochs and keeps its last weights (as ``fit`` does with
# restore_best False, which is therefore required), so early stopping's patience and monitor play
# no part, as in ``fit`` with the final weights.
TOGETHER_HONOURS = frozenset({
    "epochs", "batch_size", "augment", "augment_shift", "augment_rotation", "augment_zoom",
    "learning_rate", "steps_per_execution", "patience", "monitor",
})  # fmt: skip
TOGETHER_SCHEDULES = ("constant", "cosine")  # plateau watches one validation figure; the graph has many


def check_together(config: TrainConfig) -> TrainConfig:
    """``config`` if members trained together honour all of it; else a :class:`LenetError` naming
    what they would ignore (options left at their defaults pass)."""
    if config.lr_schedule not in TOGETHER_SCHEDULES:
        raise LenetError(f"members trained together take lr_schedule constant or cosine, not {config.lr_schedule}")
    if config.restore_best:
        raise LenetError("members trained together train every epoch and keep the last weights: set restore_best "
                         "False (--final-weights)")  # fmt: skip
    checked = {"lr_schedule", "restore_best", *TOGETHER_HONOURS}
    ignored = [f.name for f in fields(TrainConfig) if f.name not in checked and getattr(config, f.name) != f.default]
    if ignored:
        raise LenetError(f"members trained together cannot honour {', '.join(ignored)}: leave them at their defaults")
    return config


def members_together(
    builder: Callable[[], keras.Model], config: TrainConfig, seeds: list[int]
) -> tuple[keras.Model, list[keras.Model]]:
    """One compiled graph whose branches are ``len(seeds)`` models of ``builder`` (each built
    with its seed) on a shared input, behind the augmentation when ``config.augment``.

    The branches share no weights and the loss is their sum, so each member gets exactly its
    own gradient. Returns the joint model and the (plain, saveable) members.
    """
    check_together(config)
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
