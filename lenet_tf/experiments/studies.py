"""Training studies: what the activation function, weight initialisation, optimizer and learning
rate, dropout and batch size do to the standard LeNet's training.

A named study (:data:`STUDIES`) is a list of configurations, each one variation of the standard
LeNet (:func:`lenet_tf.models.study_lenet`: one activation for every hidden layer, a kernel
initializer, dropout after the hidden dense layers, an optimizer and learning rate) and a batch
size; everything else stays the standard LeNet's. Every configuration is trained R times on the
evaluation split (60/20/20) with the package's protocol (:func:`lenet_tf.training.fit`, early
stopping on validation accuracy) and measured on the held-out test part. Repeat r of every
configuration uses the same seed, so configurations are compared on paired initialisations (as
far as their shapes agree). A callback (:class:`GradientMagnitudes`) records the mean |gradient|
of every layer's kernel on a fixed batch of training digits at initialisation and after every
epoch: vanishing or exploding gradients show up per layer.

Run directory layout::

    config.json                                     what the study is (split, seeds, protocol)
    configurations/<label>/repeat_01/metrics.json   one training: accuracies, history, gradients
                                                    (written last: present = done)
    study.json / study.md                           per-training figures and mean ± std per configuration
    accuracy.png                                    validation and test accuracy per configuration
    convergence.png                                 validation accuracy per epoch
    gradients.png                                   per-layer gradient magnitude per epoch, a panel per configuration
    learning_rates.png                              (optimizer study) test accuracy against the learning rate
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .. import options
from ..data import DigitData, prepare
from ..errors import LenetError
from ..models import study_lenet
from ..pipeline import open_experiment
from ..plots import (
    plot_configuration_accuracy,
    plot_configuration_convergence,
    plot_gradient_magnitudes,
    plot_learning_rate_grid,
)
from ..rundir import environment, markdown_table, write_json, write_text
from ..seeds import repeat_seed
from ..stats import ci_text, pm, summarize
from ..training import accuracy, fit, set_seed
from .runner import ITEM_FILE, Experiment, ExperimentResult, Item, Progress, Records, read_item, run_experiment

CONFIGURATIONS_DIR = "configurations"
GRADIENT_BATCH = 256
LEARNING_RATES = (1e-4, 1e-3, 1e-2, 1e-1)
STEP_DECAY_EPOCHS = (10, 20)  # the rate drops tenfold after these epochs: 0.1 → 0.01 → 0.001
STUDY_PARAMETERS = ("activation", "initializer", "dropout", "optimizer", "learning_rate", "decay_epochs")

# The studies were designed and measured on pixels divided by 255 (sigmoid and random-normal
# initialisation saturate on raw 0–255 input, which would study the scale, not the choice).
STUDY_INPUT_SCALE = "unit"



@dataclass(frozen=True)
class StudyConfig:
    """One configuration of a study: a label (a file name too), :func:`study_lenet` arguments
    (``decay_epochs`` in place of ``decay_steps``: epochs convert to optimizer steps with the
    training-set size) and a batch size (None: the study's ``--batch-size``)."""

    label: str
    model: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        model = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model.items()}
        return {"label": self.label, "model": model, "batch_size": self.batch_size}

    def builder(self, train_images: int, batch_size: int) -> Callable[[], keras.Model]:
        """A builder of this configuration's model for ``train_images`` images per epoch."""
        kwargs = dict(self.model)
        epochs = kwargs.pop("decay_epochs", None)
        if epochs is not None:
            steps_per_epoch = math.ceil(train_images / batch_size)
            kwargs["decay_steps"] = tuple(int(e) * steps_per_epoch for e in epochs)
        return lambda: study_lenet(**kwargs, input_scale=STUDY_INPUT_SCALE)

    def validate(self) -> StudyConfig:
        """Check the label, batch size and arguments (by building the model once)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.label):
            raise LenetError(f"configuration label {self.label!r}: use letters, digits, '.', '_' or '-' only")
        unknown = sorted(set(self.model) - set(STUDY_PARAMETERS))
        if unknown:
            raise LenetError(
                f"configuration {self.label}: unknown setting {unknown[0]!r}; known: {', '.join(STUDY_PARAMETERS)}"
            )
        batch = self.batch_size
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise LenetError(f"configuration {self.label}: batch size must be an integer ≥ 1, got {batch!r}")
        try:
            self.builder(train_images=1000, batch_size=batch or 32)()
        except LenetError as exc:
            raise LenetError(f"configuration {self.label}: {exc}") from None
        return self


def _activation_study() -> list[StudyConfig]:
    return [StudyConfig(a, {"activation": a}) for a in ("sigmoid", "tanh", "relu", "gelu", "elu")]


def _initialization_study() -> list[StudyConfig]:
    return [StudyConfig(i, {"initializer": i}) for i in ("random_normal", "glorot_uniform", "he_normal")]


def _optimizer_study() -> list[StudyConfig]:
    configs = [
        StudyConfig(f"{name}_lr{lr:g}", {"optimizer": name, "learning_rate": lr})
        for name in ("sgd", "momentum", "adam")
        for lr in LEARNING_RATES
    ]
    step = {"optimizer": "step_decay", "learning_rate": 0.1, "decay_epochs": STEP_DECAY_EPOCHS}
    return [*configs, StudyConfig("step_decay_lr0.1", step)]


def _dropout_study() -> list[StudyConfig]:
    return [StudyConfig(f"dropout_{rate:g}", {"dropout": rate}) for rate in (0.0, 0.2, 0.5)]


def _batch_size_study() -> list[StudyConfig]:
    return [StudyConfig(f"batch_{size}", {}, batch_size=size) for size in (32, 64, 128)]


# Name → configurations; each varies one factor of the standard LeNet (tanh, Glorot uniform,
# Adam 1e-3, no dropout, batch 32).
STUDIES: dict[str, Callable[[], list[StudyConfig]]] = {
    "activation": _activation_study,
    "initialization": _initialization_study,
    "optimizer": _optimizer_study,
    "dropout": _dropout_study,
    "batch_size": _batch_size_study,
}


def study_configurations(name: str, only: Sequence[str] | None = None) -> list[StudyConfig]:
    """The configurations of study ``name`` (those labelled in ``only`` when given)."""
    if name not in STUDIES:
        raise LenetError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    configs = STUDIES[name]()
    if only:
        labels = [c.label for c in configs]
        unknown = [label for label in only if label not in labels]
        if unknown:
            raise LenetError(f"--only: study {name} has no configuration {unknown[0]!r}; it has {', '.join(labels)}")
        configs = [c for c in configs if c.label in only]
    return configs


class GradientMagnitudes(keras.callbacks.Callback):
    """Records the mean |∂loss/∂kernel| of every layer with weights on a fixed batch, before
    training (epoch 0) and after every epoch (``magnitudes[layer]`` is the per-epoch list).

    The batch is evaluated in inference mode (dropout off) and without the L2 terms, so epochs
    and configurations compare like for like: the data loss's gradient at the current weights.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        super().__init__()
        self.images = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
        self.labels = tf.convert_to_tensor(np.asarray(labels).astype(np.int32))
        self.magnitudes: dict[str, list[float]] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.record()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.record()

    def record(self) -> dict[str, float]:
        """Append (and return) the current per-layer magnitudes."""
        layers = [layer for layer in self.model.layers if layer.trainable_weights]
        kernels = [next((w for w in layer.trainable_weights if w.name == "kernel"), layer.trainable_weights[0])
                   for layer in layers]  # fmt: skip
        with tf.GradientTape() as tape:
            probabilities = self.model(self.images, training=False)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(self.labels, probabilities))
        gradients = tape.gradient(loss, kernels)
        now = {layer.name: float(tf.reduce_mean(tf.abs(g))) for layer, g in zip(layers, gradients, strict=True)}
        for name, value in now.items():
            self.magnitudes.setdefault(name, []).append(value)
        return now


@dataclass(frozen=True)
class StudySpec(options.StudyOptions):
    """A named study (or explicit ``configurations``), R repeats, seeds, split and fit protocol."""

    # None: the named study's. The configurations are the study's items (their labels).
    configurations: tuple[StudyConfig, ...] | None = field(default=None, metadata={"record": "items"})
    gradient_batch: int = options.option(GRADIENT_BATCH, kind="int", low=1, cli=False,
                                         help="training images whose per-layer gradient magnitudes are recorded")

    def resolved(self) -> list[StudyConfig]:
        """The configurations to train, validated (labels unique)."""
        configs = list(self.configurations) if self.configurations is not None else study_configurations(self.name)
        if not configs:
            raise LenetError(f"study {self.name}: no configurations to train")
        labels = [c.label for c in configs]
        duplicate = next((label for label in labels if labels.count(label) > 1), None)
        if duplicate:
            raise LenetError(f"study {self.name}: configuration label {duplicate!r} appears twice")
        return [c.validate() for c in configs]

    def validate(self) -> StudySpec:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise LenetError(f"study name {self.name!r}: use letters, digits, '.', '_' or '-' only")
        # name is checked by the configurations (a custom study may be named), not by choices
        options.validate(self)
        return self


def study(
    spec: StudySpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Run (or resume) a training study into ``out`` and return its results (study.json)."""
    configs = {c.label: c for c in spec.validate().resolved()}  # before the data: a bad configuration fails fast
    out, started = Path(out), time.perf_counter()
    job = open_experiment(spec, data=data, source=source, echo=echo, model=False)
    split = job.split
    echo(f"study {spec.name}: {len(configs)} configurations")
    config = job.config(
        kind="study", model={"name": "standard", "builder": "study_lenet", "input_scale": STUDY_INPUT_SCALE},
        study=spec.name, **options.run_record(spec),
    )  # fmt: skip
    images = _StudyImages.of(split, spec)
    plan = [
        Item(f"{CONFIGURATIONS_DIR}/{label}/repeat_{r + 1:02d}", {"label": label, "repeat": r})
        for label in configs
        for r in range(spec.repeats)
    ]

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        return _train_configuration(configs[item["label"]], item["repeat"], spec, images, progress)

    def write_outputs(records: Records, progress_: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        runs: dict[str, list[dict[str, Any]]] = {}
        for item, record in records:
            runs.setdefault(item["label"], []).append(record)
        result = {
            "config": config, "study": spec.name, "repeats_requested": spec.repeats,
            "trainings_finished": progress_.done, "trainings_planned": progress_.total,
            "configurations": [c.to_dict() for c in configs.values()], "data_source": job.data.source,
            "summary": {label: summarize_configuration(items) for label, items in runs.items()}, "runs": runs,
            "invocation_seconds": round(time.perf_counter() - started, 2), "environment": environment(),
        }  # fmt: skip
        return result, _write_study(result, out, [configs[label] for label in runs])

    def on_item(item: Item, record: dict[str, Any], resumed: bool) -> None:
        if item["repeat"] == spec.repeats - 1:
            label = item["label"]
            done = [read_item(i, out / i.path) or {} for i in plan if i["label"] == label]
            echo(f"{label}: test accuracy {pm(summarize([d['test_accuracy'] for d in done]), 4)}")

    experiment = Experiment(
        "study", plan, run_item, write_outputs, load_item=partial(_read_training, configs), on_item=on_item, unit="fit",
        postfix=lambda item, record: {"config": item["label"], "test": f"{record['test_accuracy']:.3f}"},
    )  # fmt: skip
    run = run_experiment(
        experiment, out, config, force=force, progress=progress, echo=echo, executor=executor
    )
    echo(f"study: {out}/" + ", ".join(path.name for path in run.paths.values()))
    return run


def _read_training(configs: Mapping[str, StudyConfig], item: Item, directory: Path) -> dict[str, Any] | None:
    """A finished training of ``item``, refused when it was trained with other settings under its label."""
    record = read_item(item, directory)
    if record is not None and record.get("configuration") != configs[item["label"]].to_dict():
        raise LenetError(
            f"{directory / ITEM_FILE} holds configuration {item['label']} with other settings; use another"
            f" --out, or delete {directory} to train it again"
        )
    return record


@dataclass(frozen=True)
class _StudyImages:
    """The split's images prepared once, and the fixed gradient batch every training is measured on."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    gradient_batch: np.ndarray  # indices into the training part

    @classmethod
    def of(cls, split: Any, spec: StudySpec) -> _StudyImages:
        x_train = prepare(split.x_train)
        # Fixed training digits (seeded by the split), the same for every training.
        size = min(spec.gradient_batch, len(x_train))
        chosen = np.sort(np.random.default_rng(spec.split_seed).choice(len(x_train), size, False))
        return cls(x_train, split.y_train, prepare(split.x_val), split.y_val, prepare(split.x_test), split.y_test,
                   chosen)  # fmt: skip


def _train_configuration(
    cfg: StudyConfig, repeat: int, spec: StudySpec, images: _StudyImages, progress: bool
) -> dict[str, Any]:
    """Train repeat ``repeat`` (0-based) of configuration ``cfg`` and measure it."""
    train_config = replace(spec.train, batch_size=cfg.batch_size or spec.train.batch_size)
    seed = repeat_seed(spec.seed, repeat)
    chosen = images.gradient_batch
    gradients = GradientMagnitudes(images.x_train[chosen], images.y_train[chosen])
    set_seed(seed)  # before building: the seed fixes the initial weights too
    model = cfg.builder(len(images.x_train), train_config.batch_size)()
    result = fit(
        model, images.x_train, images.y_train, images.x_val, images.y_val, config=train_config, seed=seed,
        progress=progress, callbacks=[gradients],
    )  # fmt: skip
    return {
        "configuration": cfg.to_dict(), "repeat": repeat + 1, "seed": seed, "batch_size": train_config.batch_size,
        "train_accuracy": result.train_accuracy, "val_accuracy": result.val_accuracy,
        "test_accuracy": accuracy(model.predict(images.x_test, batch_size=1024, verbose=0), images.y_test),
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "seconds": result.seconds,
        "history": result.history, "gradients": gradients.magnitudes,
    }  # fmt: skip


def _write_study(result: dict[str, Any], out: Path, configs: Sequence[StudyConfig]) -> dict[str, Path]:
    """study.json / .md and the figures of ``result``; the learning-rate grid when rates vary."""
    summary, runs = result["summary"], result["runs"]
    paths = {
        name: out / name for name in ("study.json", "study.md", "accuracy.png", "convergence.png", "gradients.png")
    }
    write_json(paths["study.json"], result)
    write_text(paths["study.md"], study_markdown(result))
    title = f"{result['study']} study, standard LeNet"
    labels = list(runs)
    plot_configuration_accuracy(labels, [summary[label] for label in labels], paths["accuracy.png"], title=title)
    histories = {label: [i["history"] for i in items] for label, items in runs.items()}
    plot_configuration_convergence(histories, paths["convergence.png"], title=title)
    gradients = {label: summary[label]["gradients"] for label in labels}
    plot_gradient_magnitudes(gradients, paths["gradients.png"], title=f"{title} (repeat mean)")
    rates = [
        (c.model.get("optimizer", "adam"), float(c.model["learning_rate"]),
         summary[c.label]["test_accuracy"]["mean"], summary[c.label]["test_accuracy"]["std"])
        for c in configs if "learning_rate" in c.model
    ]  # fmt: skip
    if len({rate[1] for rate in rates}) > 1:
        paths["learning_rates.png"] = out / "learning_rates.png"
        plot_learning_rate_grid(rates, paths["learning_rates.png"], title=title)
    return paths


def summarize_configuration(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std and 95 % CI of one configuration's repeats, and its per-layer gradient
    magnitude per epoch averaged over the repeats that reached that epoch."""
    summary: dict[str, Any] = {
        name: summarize([item[name] for item in items])
        for name in ("train_accuracy", "val_accuracy", "test_accuracy", "epochs_run", "seconds")
    }
    gradients: dict[str, list[float]] = {}
    for layer in items[0]["gradients"]:
        series = [item["gradients"][layer] for item in items]
        longest = max(len(s) for s in series)
        gradients[layer] = [float(np.mean([s[e] for s in series if len(s) > e])) for e in range(longest)]
    summary["gradients"] = gradients
    return summary


def _settings(configuration: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in configuration["model"].items()]
    if configuration["batch_size"] is not None:
        parts.append(f"batch_size={configuration['batch_size']}")
    return ", ".join(parts) or "standard LeNet"


def study_markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a study.json: a comparison row per configuration, the initial gradients."""
    summary, config = result["summary"], result["config"]
    configurations = {c["label"]: c for c in result["configurations"]}
    n = sorted({s["test_accuracy"]["n"] for s in summary.values()})
    repeats = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
    train = config["train"]
    stopping = (
        f"≤ {train['epochs']} epochs, early stopping on validation accuracy (patience {train['patience']})"
        if train.get("restore_best", True)
        else f"all {train['epochs']} epochs, last weights kept (no early stopping)"
    )
    lines = [
        f"# Training study: {result['study']} (standard LeNet, one factor varied)\n\n",
        f"Data: {result['data_source']}; split {config['split_sizes']}; protocol: {stopping}, batch"
        f" {train['batch_size']} unless set. {repeats} repeat(s) per configuration; mean ± sample std"
        " (ddof=1), 95 % CI (Student t) of the test accuracy.\n\n",
    ]
    if result.get("trainings_finished", 0) < result.get("trainings_planned", 0):
        lines.append(Progress(result["trainings_finished"], result["trainings_planned"]).note("trainings") + ".\n\n")
    rows = []
    for label, s in summary.items():
        test = s["test_accuracy"]
        rows.append(
            [label, _settings(configurations[label]), pm(s["train_accuracy"], 4), pm(s["val_accuracy"], 4),
             pm(test, 4), ci_text(test), pm(s["epochs_run"], 1),
             pm(s["seconds"], 0), test["n"]]
        )  # fmt: skip
    headers = ["configuration", "settings", "train", "val", "test", "test 95 % CI", "epochs", "seconds", "repeats"]
    lines.append(markdown_table(headers, rows))
    best = max(summary, key=lambda label: summary[label]["test_accuracy"]["mean"])
    lines.append(f"\nBest mean test accuracy: **{best}** ({pm(summary[best]['test_accuracy'], 4)}).\n")
    layers = list(next(iter(summary.values()))["gradients"])
    grad_rows = [
        [label, *(f"{s['gradients'][layer][0]:.2e}" if s["gradients"].get(layer) else "-" for layer in layers)]
        for label, s in summary.items()
    ]
    lines.append(
        "\n## Mean |∂loss/∂kernel| per layer at initialisation (fixed batch; every epoch in gradients.png)\n\n"
        + markdown_table(["configuration", *layers], grad_rows)
    )
    return "".join(lines)
