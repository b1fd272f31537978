"""Adversarial robustness: the fast gradient sign method (FGSM) and adversarial training.

FGSM (Goodfellow et al. 2015) moves every pixel by ε in the direction that increases the model's
loss: ``x' = clip(x + ε·255·sign(∇x L(f(x), y)), 0, 255)`` on Kaggle's 0–255 pixels, so ε is a
fraction of full ink whatever scale the model applies inside itself. :func:`robustness` trains a model R times
on the evaluation split (60/20/20) normally and R times with adversarial training (every batch
is doubled with FGSM copies of itself, so the loss is ½ clean + ½ adversarial), or loads a
finished run (``run``), and measures test accuracy under FGSM for each ε. Models train with the
package's protocol (:func:`lenet_tf.training.fit`: early stopping on *clean* validation
accuracy); the same seed per repeat for both trainings makes the comparison paired.

Run directory layout::

    config.json                                what the run is
    variants/normal/repeat_01/model.keras      the trained model (saved first)
    variants/normal/repeat_01/fit.json         its training figures
    variants/normal/repeat_01/metrics.json     clean and per-ε accuracy (written last: present = done)
    variants/adversarial/repeat_01/...         the same with adversarial training
    robustness.json / robustness.md            per-repeat figures and mean ± std per ε
    accuracy_vs_epsilon.png                    accuracy against ε, one line per training
    adversarial_examples_<variant>.png         test digits attacked at each ε, clean → adversarial predictions

Attacks of new ε values on a finished run are computed from the saved models; nothing is retrained.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .. import options
from ..data import PIXEL_MAX, DigitData, Split, prepare
from ..ensemble import MEMBERS_DIR, Ensemble
from ..errors import LenetError
from ..figures import plot_digit_grid
from ..models import LeNetHParams, get_builder, lenet, load_saved_model, model_title
from ..pipeline import open_experiment, prepare_split
from ..plots import Figure, plot_accuracy_vs_epsilon
from ..rundir import (
    CONFIG_FILE,
    PACKAGE_KEY,
    SCHEMA_KEY,
    environment,
    markdown_table,
    read_json,
    save_model,
    write_json,
    write_text,
)
from ..seeds import repeat_seed
from ..stats import pm, summarize
from ..training import FitResult, TrainConfig, accuracy, train
from .runner import Experiment, ExperimentResult, Item, Progress, Records, read_item, run_experiment

VARIANTS_DIR = "variants"
ATTACK_BATCH = 256


# ----------------------------------------------------------------------------- the attack


def _check_inputs(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise LenetError(f"FGSM: {len(images)} images but {len(labels)} labels")
    if images.size and (images.min() < 0 or images.max() > PIXEL_MAX):
        raise LenetError(f"FGSM: expected prepared images with pixels in [0, {PIXEL_MAX}] (see lenet_tf.data.prepare)")
    return images, labels


def check_epsilon(epsilon: float, what: str = "ε") -> float:
    """``epsilon`` as a float in [0, 1], or a LenetError naming it."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon):
        raise LenetError(f"{what} must be a number in [0, 1], got {epsilon!r}")
    if not 0 <= epsilon <= 1:
        raise LenetError(f"{what} must be in [0, 1] (pixels are in [0, 1]), got {epsilon!r}")
    return float(epsilon)


def _loss_gradient_sign(model: keras.Model, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """sign(∇x loss) for a batch. Summed, not averaged, loss: the sign is the same and a large
    batch does not shrink the gradients towards float32 underflow. Keras' cross-entropy takes the
    softmax's logits when the model ends in a softmax, so confident predictions keep a gradient."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        probabilities = model(x, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, probabilities))
    return tf.sign(tape.gradient(loss, x))


def gradient_sign(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, *, batch_size: int = ATTACK_BATCH
) -> np.ndarray:
    """sign(∇x loss) of every image (float32 in {-1, 0, 1}, the images' shape), batch by batch.

    ``images`` are the model's inputs (float32 pixels 0–255, e.g. from :func:`lenet_tf.data.prepare`).
    """
    images, labels = _check_inputs(images, labels)
    signs = np.empty_like(images)
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start : start + batch_size])
        y = tf.convert_to_tensor(labels[start : start + batch_size].astype(np.int32))
        signs[start : start + batch_size] = _loss_gradient_sign(model, x, y).numpy()
    return signs


def perturb(images: np.ndarray, signs: np.ndarray, epsilon: float) -> np.ndarray:
    """``clip(images + ε·255·signs, 0, 255)`` as float32: ε is a fraction of full ink."""
    epsilon = check_epsilon(epsilon)
    step = np.float32(epsilon * PIXEL_MAX) * signs
    return np.clip(np.asarray(images, dtype=np.float32) + step, 0.0, PIXEL_MAX).astype(np.float32)


def fgsm(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, epsilon: float, *, batch_size: int = ATTACK_BATCH
) -> np.ndarray:
    """FGSM adversarial examples ``clip(x + ε·255·sign(∇x loss), 0, 255)`` of 0–255 float images."""
    epsilon = check_epsilon(epsilon)
    return perturb(images, gradient_sign(model, images, labels, batch_size=batch_size), epsilon)


def accuracy_under_attack(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    epsilons: Sequence[float],
    *,
    batch_size: int = ATTACK_BATCH,
) -> dict[float, float]:
    """Accuracy on FGSM examples for every ε (the gradient sign is computed once: it does not
    depend on ε). ε = 0 leaves the images unchanged, so its accuracy is the clean accuracy."""
    epsilons = [check_epsilon(e) for e in epsilons]
    signs = gradient_sign(model, images, labels, batch_size=batch_size)
    return {e: accuracy(model.predict(perturb(images, signs, e), batch_size=1024, verbose=0), labels) for e in epsilons}


# ----------------------------------------------------------------------------- adversarial training


class AdversarialTrainer(keras.Model):
    """Wraps a compiled model so that ``fit`` trains it adversarially: each training batch is
    extended with its FGSM copies at ``epsilon`` (crafted against the current weights), so the
    loss weighs clean and adversarial examples equally. Validation and prediction are the wrapped
    model's, and the wrapped model holds the trained weights (save that one, not the wrapper)."""

    def __init__(self, model: keras.Model, epsilon: float = options.RobustnessOptions.train_epsilon):
        super().__init__(name=f"{model.name}_adversarial")
        self.inner = model
        self.epsilon = check_epsilon(epsilon, "--train-epsilon")
        # The wrapped model's optimizer and loss: classic LeNet-5 keeps its SGD, the others Adam.
        self.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.inner(inputs, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        signs = _loss_gradient_sign(self.inner, x, y)
        x_adv = tf.stop_gradient(tf.clip_by_value(x + self.epsilon * PIXEL_MAX * signs, 0.0, float(PIXEL_MAX)))
        # Keras' own step on the doubled batch: loss, regularisation, metrics and optimizer as usual.
        return super().train_step((tf.concat([x, x_adv], axis=0), tf.concat([y, y], axis=0)))


def train_model(
    builder: Callable[[], keras.Model],
    split: Split,
    *,
    adversarial_epsilon: float | None = None,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    progress: bool = True,
) -> tuple[keras.Model, FitResult]:
    """:func:`lenet_tf.training.train`, the one training path, with the built model wrapped in an
    :class:`AdversarialTrainer` at ``adversarial_epsilon`` (None: a normal training); returns the
    plain trained model."""
    wrap = None if adversarial_epsilon is None else functools.partial(AdversarialTrainer, epsilon=adversarial_epsilon)
    model, result = train(builder, split, config=config, seed=seed, progress=progress, wrap=wrap)
    if adversarial_epsilon is not None:
        result.extra["train_epsilon"] = adversarial_epsilon
    return model, result


# ----------------------------------------------------------------------------- loading a finished run


def averaged_model(members: Sequence[keras.Model]) -> keras.Model:
    """One Keras model averaging the members' probabilities, so an ensemble can be attacked through
    its averaged output (:meth:`lenet_tf.ensemble.Ensemble.as_model`)."""
    return Ensemble(members).as_model()


def run_config(run: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory, or of the evaluation holding a ``repeats/repeat_XX``."""
    run = Path(run)
    candidates = [run]
    if run.parent.name == "repeats":
        candidates.append(run.parent.parent)
    for directory in candidates:
        if (directory / CONFIG_FILE).is_file():
            return read_json(directory / CONFIG_FILE)
    raise LenetError(f"{run}: no {CONFIG_FILE} (needed to rebuild the split the model was trained on)")


def _run_builder(model_info: dict[str, Any]) -> Callable[[], keras.Model]:
    """The builder of a run's model, from its recorded name, hyperparameters, input scale and output L2."""
    if "input_scale" not in model_info:
        raise LenetError(f"the run's model ({model_info.get('name')}) was recorded by a lenet_tf before the input "
                         "scale was a choice (0.2.0); retrain it with this version")  # fmt: skip
    options = {"input_scale": model_info["input_scale"]}
    if model_info.get("output_l2") is not None:
        options["output_l2"] = model_info["output_l2"]
    if model_info.get("hparams"):
        return functools.partial(lenet, LeNetHParams.from_dict(model_info["hparams"]), **options)
    return functools.partial(get_builder(model_info["name"]), **options)


# ----------------------------------------------------------------------------- the study


def _epsilon_key(epsilon: float) -> str:
    return f"{epsilon:g}"


@dataclass(frozen=True)
class RobustnessSpec(options.RobustnessOptions):
    """What to attack: a registered model trained ``repeats`` times (or the model(s) of a finished
    ``run``), with and without adversarial training at ``train_epsilon``, at every ε of ``epsilons``."""


@dataclass(frozen=True)
class _Subject:
    """What the study attacks: the job (data, split), the builder, the loaded run's members (or None)."""

    job: Any
    builder: Callable[[], keras.Model]
    model_info: dict[str, Any]
    loaded: Ensemble | None
    config: dict[str, Any]


def robustness(
    spec: RobustnessSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Run (or resume) the FGSM study into ``out`` and return its results (robustness.json)."""
    spec.validate()
    out = Path(out)
    started = time.perf_counter()
    epsilons = sorted(set(spec.epsilons))
    subject = _subject(spec, data, source, echo)
    split = subject.job.split
    x_attack, y_attack, attacked = _attack_set(split, subject.config)
    echo(f"attacking the {attacked} ({len(y_attack)} digits)")
    plan = _plan(spec, loaded=subject.loaded is not None)
    load_run = (lambda: averaged_model(subject.loaded.members)) if subject.loaded is not None else None

    def run_item(item: Item, directory: Path) -> dict[str, Any]:
        variant, r = item["variant"], item["repeat"]
        train_item = lambda: train_model(  # noqa: E731
            subject.builder, split, adversarial_epsilon=spec.train_epsilon if variant == "adversarial" else None,
            config=spec.train, seed=repeat_seed(spec.seed, r), progress=progress,
        )  # fmt: skip
        # The normal variant of a --run is the run's own model: loaded, never trained or saved here.
        load_model = load_run if variant == "normal" else None
        return _attack_item(
            directory, variant, r, epsilons, x_attack, y_attack, train=train_item, load_model=load_model,
            seed=repeat_seed(spec.seed, r),
        )  # fmt: skip

    def on_item(item: Item, record: dict[str, Any], resumed: bool) -> None:
        worst = record["accuracy"][_epsilon_key(epsilons[-1])]
        echo(
            f"{item['variant']} training, repeat {item['repeat'] + 1}: clean accuracy {record['clean_accuracy']:.4f},"
            f" ε={epsilons[-1]:g} {worst:.4f}"
        )

    def write_outputs(records: Records, progress_: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        result = _robustness_report(records, subject, epsilons, (attacked, len(y_attack)), started)
        result["models_finished"], result["models_planned"] = progress_.done, progress_.total
        examples = (x_attack[: spec.examples], y_attack[: spec.examples])
        return result, _write_robustness(result, out, spec, examples, load_run, final=progress_.finished)

    experiment = Experiment(
        "robustness study", plan, run_item, write_outputs, load_item=functools.partial(_read_attacked, epsilons),
        on_item=on_item, unit="model",
        postfix=lambda item, record: {"variant": item["variant"], "clean": f"{record['clean_accuracy']:.3f}"},
    )  # fmt: skip
    run = run_experiment(
        experiment, out, subject.config, force=force, progress=progress, echo=echo, executor=executor
    )
    echo(f"robustness: {out}/robustness.json, robustness.md, accuracy_vs_epsilon.png, adversarial_examples_*.png")
    return run


def _plan(spec: RobustnessSpec, *, loaded: bool) -> list[Item]:
    """Every (variant, repeat): a loaded run's own model once, else R normal trainings; R adversarial ones."""
    variants = (["normal"] if not loaded else []) + (["adversarial"] if spec.adversarial_training else [])
    plan = [Item(f"{VARIANTS_DIR}/normal/repeat_01", {"variant": "normal", "repeat": 0})] if loaded else []
    return plan + [
        Item(f"{VARIANTS_DIR}/{v}/repeat_{r + 1:02d}", {"variant": v, "repeat": r})
        for v in variants
        for r in range(spec.repeats)
    ]


def _read_attacked(epsilons: Sequence[float], item: Item, directory: Path) -> dict[str, Any] | None:
    """A finished item attacked at every ε; None (run it again, attacking the saved model) otherwise."""
    record = read_item(item, directory)
    return record if record and all(_epsilon_key(e) in record["accuracy"] for e in epsilons) else None


def _subject(
    spec: RobustnessSpec, data: DigitData | None, source: str | Path | None, echo: Callable[[str], None]
) -> _Subject:
    """The model to train (``spec.model``) or the finished run to load (``spec.run``), its data and config."""
    fields = {"kind": "robustness", **options.run_record(spec)}
    if spec.run is None:
        job = open_experiment(spec, data=data, source=source, echo=echo)
        return _Subject(job, job.builder, job.model_info, None, job.config(**fields))
    recorded = run_config(spec.run)
    model_info = recorded.get("model") or {}
    if spec.model is not None and model_info.get("name") != spec.model:
        raise LenetError(f"--run {spec.run} holds a {model_info.get('name')!r} run, not --model {spec.model!r}")
    # The run's own split: the models must be attacked on digits they were not trained on.
    job = prepare_split(
        protocol=recorded.get("protocol", "evaluation"), split_seed=recorded.get("split_seed", 0),
        max_train=recorded.get("max_train"), data=data, source=source, echo=echo,
    )  # fmt: skip
    if job.data.fingerprint() != recorded.get("data_fingerprint"):
        raise LenetError(f"--run {spec.run} was trained on other data; pass the run's --data")
    echo(f"data: {job.data.source}; the run's split {job.split.sizes()}")
    # The members trained on the training part only: a refit's members also learned the validation
    # digits, which a deployment run's attack would then call unseen.
    loaded = Ensemble.load(Path(spec.run) / MEMBERS_DIR if (Path(spec.run) / MEMBERS_DIR).is_dir() else spec.run)
    run_train = recorded.get("train") or {}
    # The run's whole configuration: a study never resumes against a run retrained since.
    trained_as = {key: value for key, value in recorded.items() if key not in (SCHEMA_KEY, PACKAGE_KEY)}
    config = {
        **job.config(**fields), "model": model_info, "run": str(spec.run), "run_members": len(loaded),
        "run_restore_best": bool(run_train.get("restore_best", True)), "run_config": trained_as,
    }  # fmt: skip
    return _Subject(job, _run_builder(model_info), model_info, loaded, config)


def _robustness_report(
    records: Records, subject: _Subject, epsilons: Sequence[float], attacked: tuple[str, int], started: float
) -> dict[str, Any]:
    items: dict[str, list[dict[str, Any]]] = {}
    for item, record in records:
        items.setdefault(item["variant"], []).append(record)
    summary = {
        variant: {_epsilon_key(e): summarize([i["accuracy"][_epsilon_key(e)] for i in runs]) for e in epsilons}
        | {"clean": summarize([i["clean_accuracy"] for i in runs])}
        for variant, runs in items.items()
    }
    return {
        "config": subject.config,
        "epsilons": list(epsilons),
        "attacked": {"set": attacked[0], "images": attacked[1]},
        "data_source": subject.job.data.source,
        "summary": summary,
        "variants": items,
        "invocation_seconds": round(time.perf_counter() - started, 2),
        "environment": environment(),
    }


def _write_robustness(
    result: dict[str, Any],
    out: Path,
    spec: RobustnessSpec,
    examples: tuple[np.ndarray, np.ndarray],
    load_run: Callable[[], keras.Model] | None,
    *,
    final: bool,
) -> dict[str, Path]:
    """robustness.json / .md and accuracy_vs_epsilon.png; the example grids once every model is done."""
    summary, epsilons = result["summary"], result["epsilons"]
    title = model_title(result["config"]["model"].get("name", "?")) + (f" (run {spec.run})" if spec.run else "")
    paths = {
        "json": out / "robustness.json",
        "markdown": out / "robustness.md",
        "figure": out / "accuracy_vs_epsilon.png",
    }
    write_json(paths["json"], result)
    write_text(paths["markdown"], robustness_markdown(result, title))
    curves = {
        _variant_label(v, spec.train_epsilon, spec.run): (
            [summary[v][_epsilon_key(e)]["mean"] for e in epsilons],
            [summary[v][_epsilon_key(e)]["std"] for e in epsilons],
        )
        for v in summary
    }
    plot_accuracy_vs_epsilon(epsilons, curves, paths["figure"], title=title)
    for variant in summary if final else ():
        directory = out / VARIANTS_DIR / variant / "repeat_01"
        model = _load_item_model(directory, load_run if variant == "normal" else None)
        paths[f"examples_{variant}"] = out / f"adversarial_examples_{variant}.png"
        plot_adversarial_examples(
            model, *examples, epsilons, paths[f"examples_{variant}"],
            title=f"FGSM examples, {_variant_label(variant, spec.train_epsilon, spec.run)}: {title}",
        )  # fmt: skip
    return paths


def _attack_set(split: Split, config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """The held-out test part (evaluation protocol), else the validation part (deployment runs),
    described by what the run did with it."""
    if split.x_test is not None and split.y_test is not None:
        return prepare(split.x_test), split.y_test, "held-out test part"
    if config.get("run_restore_best", True):
        use = "not trained on, but the run's early stopping chose its kept epoch on these digits"
    else:
        use = "not trained on; monitored during the run's training, which kept its last epoch's weights"
    return prepare(split.x_val), split.y_val, f"validation part ({use})"


def _variant_label(variant: str, train_epsilon: float, run: str | None) -> str:
    if variant == "adversarial":
        return f"adversarial training (ε={train_epsilon:g})"
    return "normal training" + (" (loaded run)" if run else "")


def _load_item_model(directory: Path, load_model: Callable[[], keras.Model] | None) -> keras.Model:
    if load_model is not None:
        return load_model()
    return load_saved_model(directory / "model.keras")


def _attack_item(
    directory: Path,
    variant: str,
    repeat: int,
    epsilons: Sequence[float],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    train: Callable[[], tuple[keras.Model, FitResult]],
    load_model: Callable[[], keras.Model] | None,
    seed: int,
) -> dict[str, Any]:
    """One (variant, repeat): train it (or load it), attack it at every ε not yet measured, and
    return its record (the runner writes it as metrics.json, last)."""
    metrics_path, fit_path = directory / "metrics.json", directory / "fit.json"
    item = read_json(metrics_path) if metrics_path.is_file() else None
    missing = list(epsilons) if item is None else [e for e in epsilons if _epsilon_key(e) not in item["accuracy"]]
    if item is not None and not missing:
        return item
    model: keras.Model
    if load_model is not None:
        model, fit_figures = load_model(), None
    elif fit_path.is_file() and (directory / "model.keras").is_file():
        model, fit_figures = _load_item_model(directory, None), read_json(fit_path)
    else:
        model, result = train()
        fit_figures = result.to_dict()
        # The model first, its fit second, the attack's metrics last: present = complete.
        save_model(model, directory / "model.keras")
        write_json(fit_path, fit_figures)
    if item is None:
        clean = accuracy(model.predict(images, batch_size=1024, verbose=0), labels)
        item = {"variant": variant, "repeat": repeat + 1, "seed": seed, "clean_accuracy": clean, "accuracy": {}}
        if fit_figures is not None:
            item["fit"] = {k: v for k, v in fit_figures.items() if k != "history"}
    attacked = accuracy_under_attack(model, images, labels, missing)
    merged = item["accuracy"] | {_epsilon_key(e): a for e, a in attacked.items()}
    item["accuracy"] = dict(sorted(merged.items(), key=lambda kv: float(kv[0])))
    return item


def _training_text(variants: Sequence[str], config: dict[str, Any]) -> str:
    """What the compared trainings were, only those in the table."""
    parts = []
    if "normal" in variants:
        parts.append(" The normal model is the loaded run's." if config.get("run") else "")
    if "adversarial" in variants:
        parts.append(
            f" Adversarial training mixes FGSM examples at ε={config['train_epsilon']:g} 1:1 into every batch."
        )
    return "".join(parts)


def plot_adversarial_examples(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    epsilons: Sequence[float],
    path: str | Path | None,
    *,
    title: str,
) -> Figure:
    """A grid of test digits (columns) attacked at each ε (rows), captioned with the true digit
    and the clean → adversarial prediction; a changed prediction is red."""
    images, labels = _check_inputs(images, labels)
    signs = gradient_sign(model, images, labels)
    clean = np.argmax(model.predict(images, verbose=0), axis=1)
    shown, captions, colors = [], [], []
    for epsilon in epsilons:
        adversarial = perturb(images, signs, epsilon)
        predicted = np.argmax(model.predict(adversarial, verbose=0), axis=1)
        for i in range(len(images)):
            shown.append(np.rint(adversarial[i, ..., 0]).astype(np.uint8))
            captions.append(f"ε={epsilon:g} y={labels[i]}\n{clean[i]}→{predicted[i]}")
            colors.append("red" if predicted[i] != clean[i] else "black")
    return plot_digit_grid(np.stack(shown), captions, path, title=title, columns=len(images), caption_colors=colors)


def robustness_markdown(result: dict[str, Any], title: str) -> str:
    """Markdown tables of a robustness.json: accuracy per ε (mean ± std) for each training."""
    summary, epsilons = result["summary"], result["epsilons"]
    config = result["config"]
    variants = list(summary)
    n = {v: summary[v]["clean"]["n"] for v in variants}
    lines = [
        f"# FGSM robustness: {title}\n\n",
        f"Data: {result['data_source']}; split {config['split_sizes']}; attacked: {result['attacked']['set']}"
        f" ({result['attacked']['images']} digits).{_training_text(variants, config)} Mean ± sample std over"
        f" repeats ({', '.join(f'{v}: {n[v]}' for v in variants)}).\n\n",
    ]
    planned = result.get("models_planned")
    if planned is not None and result["models_finished"] < planned:
        lines.append(Progress(result["models_finished"], planned).note("models") + ".\n\n")
    headers = ["ε", *(_variant_label(v, config["train_epsilon"], config.get("run")) for v in variants)]
    rows = [
        [f"{e:g}", *(pm(summary[v][_epsilon_key(e)], 4) for v in variants)]
        for e in epsilons
    ]  # fmt: skip
    lines.append(markdown_table(headers, rows))
    per_item = []
    for variant, runs in result["variants"].items():
        for item in runs:
            fit_figures = item.get("fit") or {}
            per_item.append(
                [variant, item["repeat"], f"{item['clean_accuracy']:.4f}",
                 *(f"{item['accuracy'][_epsilon_key(e)]:.4f}" for e in epsilons),
                 fit_figures.get("epochs_run", "-"), f"{fit_figures['seconds']:.0f}" if fit_figures else "-"]
            )  # fmt: skip
    headers = ["training", "repeat", "clean", *(f"ε={e:g}" for e in epsilons), "epochs", "seconds"]
    lines.append("\n## Every model\n\n" + markdown_table(headers, per_item))
    return "".join(lines)
