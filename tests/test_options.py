"""The option fields (lenet_tf.options) and the command line assembled from them."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from lenet_tf import cli
from lenet_tf import options as opt
from lenet_tf.errors import LenetError
from lenet_tf.training import TrainConfig


def test_help_answers_without_tensorflow() -> None:
    code = (
        "import sys\n"
        "from lenet_tf.cli import COMMANDS, main\n"
        "for argv in [['--help']] + [[name, '--help'] for name in COMMANDS]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, argv\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules)\n"
        "print('imported:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("imported: []"), done.stdout[-500:]


def test_to_dict_records_every_field() -> None:
    # Defect 7: fields left at their defaults were omitted, so a later change of a default
    # resumed runs trained the old way.
    assert set(TrainConfig().to_dict()) == {f.name for f in fields(TrainConfig)}
    assert TrainConfig(epochs=3).to_dict()["augment_shift"] == opt.AUGMENT_SHIFT


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(epochs=0), "epochs must be an integer ≥ 1, got 0"),
        (TrainConfig(patience=-1), "patience must be an integer ≥ 0, got -1"),
        (TrainConfig(batch_size=True), "batch_size must be an integer ≥ 1, got True"),
        (TrainConfig(augment_zoom=1.0), "augment_zoom must be a number in [0, 0.9], got 1.0"),
        (TrainConfig(learning_rate=float("nan")), "learning_rate must be a number in (0, 10], got nan"),
        (TrainConfig(lr_schedule="linear"), "lr_schedule must be one of constant, cosine, plateau, got 'linear'"),
        (TrainConfig(restore_best="yes"), "restore_best must be true or false, got 'yes'"),
    ],
)
def test_library_validation_names_the_parameter(config: TrainConfig, message: str) -> None:
    with pytest.raises(LenetError) as excinfo:
        config.validate()
    assert str(excinfo.value) == message


def test_cli_constants_match_the_library() -> None:
    from lenet_tf.data import PROTOCOLS
    from lenet_tf.experiments import studies, tuning
    from lenet_tf.models import DEFAULT_BEST_HPARAMS

    assert set(opt.PROTOCOLS) == set(PROTOCOLS) and opt.STUDY_NAMES == tuple(studies.STUDIES)
    assert opt.TUNERS == tuning.TUNERS
    assert cli.parse_args(["tune"]).out == str(DEFAULT_BEST_HPARAMS.parent)
    hparams = next(o for f, o in opt.option_fields(opt.ModelOptions) if f.name == "hparams_path")
    assert str(DEFAULT_BEST_HPARAMS) in hparams.help


# Options a command cannot honour: one line, exit 2, before any data is read (--data names a
# file that does not exist, so the old code, which accepted them, failed on the data instead).
REFUSED = [
    (["robustness", "--model", "standard", "--augment"], "--augment cannot be combined with adversarial training"),
    (["robustness", "--run", "r", "--max-train", "100"], "--max-train does not apply with --run"),
    (["robustness", "--run", "r", "--no-adversarial-training", "--epochs", "3"],
     "with --run and no adversarial training (--no-adversarial-training) nothing is trained"),
    (["study", "--name", "optimizer", "--learning-rate", "0.01"],
     "--learning-rate does not apply to the optimizer study"),
    (["study", "--name", "optimizer", "--lr-schedule", "cosine"], "--lr-schedule does not apply to the optimizer"),
    (["study", "--name", "batch_size", "--batch-size", "64"], "--batch-size does not apply to the batch_size study"),
    (["study", "--name", "dropout", "--augment"], "--augment does not apply to a study"),
    (["explore", "--members", "3"], "--members applies with --run only"),
    (["train", "--augment-shift", "0.2"],
     "--augment-shift, --augment-rotation and --augment-zoom apply with --augment only"),
    (["evaluate", "--augment-zoom", "0.2"], "apply with --augment only"),
    (["train", "--recipe", "flagship"], "unrecognized arguments: --recipe flagship"),
    # Final weights train every epoch (no early stopping): a patience would be recorded and do nothing.
    (["train", "--final-weights", "--patience", "3"], "--patience applies to early stopping, which --final-weights"),
    (["learning-curve", "--final-weights", "--patience", "5"], "--patience applies to early stopping"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_options_a_command_cannot_honour_are_refused(argv, message, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(cli.main([*argv, "--data", str(tmp_path / "missing.csv")]))
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lenet-tf: error: ") and message in err[0], err
    assert not (tmp_path / "results").exists()


def test_final_weights_keep_the_commands_own_patience() -> None:
    """The learning curve's default patience is 10, the other commands' 5: final weights with the
    command's own default are accepted, another patience is refused."""
    from lenet_tf.experiments.learning_curve import LearningCurveSpec
    from lenet_tf.pipeline import JobSpec

    LearningCurveSpec(train=replace(LearningCurveSpec().train, restore_best=False)).validate()
    JobSpec(train=TrainConfig(restore_best=False)).validate()
    with pytest.raises(LenetError, match="^patience applies to early stopping, which restore_best turns off"):
        JobSpec(train=TrainConfig(restore_best=False, patience=10)).validate()


def test_library_refuses_what_it_cannot_honour_in_its_own_words() -> None:
    from lenet_tf.experiments.robustness import RobustnessSpec
    from lenet_tf.experiments.studies import StudySpec

    with pytest.raises(LenetError, match=r"^augment cannot be combined .*\(turn one off: adversarial_training\)"):
        RobustnessSpec(model="standard", train=TrainConfig(augment=True)).validate()
    RobustnessSpec(model="standard", adversarial_training=False, train=TrainConfig(augment=True)).validate()
    with pytest.raises(LenetError, match="^learning_rate does not apply to the optimizer study"):
        StudySpec(name="optimizer", train=TrainConfig(learning_rate=0.01)).validate()
    with pytest.raises(LenetError, match="^augment_shift, augment_rotation and augment_zoom apply with augment"):
        StudySpec(train=TrainConfig(augment_shift=0.3)).validate()


def test_predict_refuses_more_members_than_the_run_holds(tmp_path: Path) -> None:
    from lenet_tf.ensemble import Ensemble
    from lenet_tf.models import standard_lenet

    Ensemble([standard_lenet(), standard_lenet()]).save(tmp_path / "run" / "members")
    with pytest.raises(LenetError, match="holds 2 members; 5 were asked for"):
        Ensemble.load(tmp_path / "run", limit=5)
    assert len(Ensemble.load(tmp_path / "run", limit=1)) == 1


# Every command × every option it offers: parsed at a value other than its default, the option
# reaches the library call it claims to change (the spec's field, or the call's argument).
TARGETS = {
    "train": "lenet_tf.pipeline.run_training", "ensemble": "lenet_tf.pipeline.run_training",
    "evaluate": "lenet_tf.experiments.evaluation.evaluate",
    "learning-curve": "lenet_tf.experiments.learning_curve.learning_curve",
    "robustness": "lenet_tf.experiments.robustness.robustness", "study": "lenet_tf.experiments.studies.study",
    "tune": "lenet_tf.experiments.tuning.tune", "baselines": "lenet_tf.experiments.baselines.baselines",
    "predict": "lenet_tf.pipeline.predict_run", "explore": "lenet_tf.experiments.exploration.explore",
    "compare": "lenet_tf.experiments.report.compare",
}  # fmt: skip
# ensemble: its options under the reference recipe (the flagship's turn early stopping off).
BASE = {"robustness": ["--model", "standard"], "study": ["--name", "activation"],
        "predict": ["--run", "r", "--submission", "o.csv"], "ensemble": ["--recipe", "reference"]}  # fmt: skip
# What else a value needs to be honoured (strengths need --augment, which robustness allows only
# without adversarial training); what no value of an option can make honourable (None).
NEEDS = {name: ["--augment"] for name in opt.STRENGTHS} | {"members@explore": ["--run", "r"]}
NEEDS |= {f"{name}@robustness": ["--augment", "--no-adversarial-training"] for name in opt.STRENGTHS}
NEEDS |= {"augment@robustness": ["--no-adversarial-training"], "augment@study": None}
NEEDS |= {f"{name}@study": None for name in opt.STRENGTHS}
NEEDS |= {"tensorboard@study": None, "tensorboard@robustness": None}  # their trainings are no run's members
# The other models have no dense L2 to leave off; the ledger records hold-outs only.
NEEDS |= {"output_l2": ["--model", "optimized"], "holdout_ledger": ["--split", "holdout"]}
NEEDS |= {name: ["--executor", "ray"] for name in opt.RAY_OPTIONS}  # the Ray executor's own options
SPECIAL = {"name@study": "dropout", "only@study": "relu", "model": "classic", "ray_address": "auto"}


def _other_value(name: str, option: opt.Option, default: Any) -> str | None:
    """Command-line text for a value other than ``default`` (None for a switch)."""
    if option.kind == "bool":
        return None
    if option.choices:
        return next(c for c in option.choices if c != default)
    if option.kind == "str":
        return "elsewhere"
    if option.is_list:
        return "7" if option.kind == "ints" else "0.5"
    if option.kind == "int":
        return str(2 if default in (None, -1) else default + 1)
    high = option.high if option.high is not None else 20.0
    return str(high / 2 if default != high / 2 else high / 4)


def _cases() -> list[tuple[str, str, type]]:
    return [
        (command, f.name, cls)
        for command, spec in cli.COMMANDS.items()
        for _, cls, _ in spec.groups
        for f, option in opt.option_fields(cls)
        if option.cli and command in TARGETS
    ]


def _landed(call: dict[str, Any], name: str, cls: type) -> Any:
    """Where option ``name`` of ``cls`` arrived in the recorded library ``call``."""
    if cls is opt.ExecutorOptions:  # the executor object the command built
        executor = call["executor"]
        fields = {"executor": "name", "ray_address": "address", "ray_cpus": "cpus", "ray_gpus": "gpus"}
        return getattr(executor, fields.get(name, "files"))
    spec = call.get("spec")
    if spec is not None and cls not in (opt.DataOptions, opt.TestFileOptions, opt.OutputOptions, opt.ProgressOptions):
        if cls is opt.SubmissionOptions:
            return call["submission"]
        if cls is opt.StudyFilter:
            return ",".join(c.label for c in spec.configurations)
        return getattr(spec, name) if hasattr(spec, name) else getattr(spec.train, name)
    aliases = {"no_progress": ("progress", lambda v: not v), "out": ("out", str), "output": ("output", str)}
    key, turn = aliases.get(name, (name, lambda v: v))
    if name in ("data", "test"):
        return call["load_data"][name]
    return turn(call[key])


@pytest.mark.parametrize(("command", "name", "cls"), _cases(), ids=[f"{c}-{n}" for c, n, _ in _cases()])
def test_every_accepted_option_reaches_the_library(command: str, name: str, cls: type, monkeypatch, capsys) -> None:
    option = next(o for f, o in opt.option_fields(cls) if f.name == name)
    default = cli.parse_args([command, *BASE.get(command, [])]).__dict__.get(opt.dest(name, option))
    text = SPECIAL.get(f"{name}@{command}", SPECIAL.get(name)) or _other_value(name, option, default)
    needs = NEEDS.get(f"{name}@{command}", NEEDS.get(name, []))
    argv = [command, *BASE.get(command, []), opt.flag_name(name, option), *([text] if text else []), *(needs or [])]
    call: dict[str, Any] = {}
    target = TARGETS[command]
    module, function = target.rsplit(".", 1)
    real = getattr(__import__(module, fromlist=[function]), function)
    monkeypatch.setattr(target, lambda *a, **k: call.update(inspect.signature(real).bind(*a, **k).arguments))
    for loader in ("load_data", "load_test_data"):  # predict reads the test images alone
        monkeypatch.setattr(f"lenet_tf.data.{loader}", lambda data=None, test=None: call.update(load_data=locals()))
    status = cli.main(argv)
    if needs is None:  # no value makes this option honourable here: refused in one line
        assert status == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
        return
    assert status == 0, capsys.readouterr().err
    expected = True if text is None else (option.parse(text) if not option.choices else text)
    if option.invert:
        expected = False
    assert _landed(call, name, cls) == expected, (argv, call)
    assert expected != (not default if option.invert else default)  # the value tried is not the default


def test_recipe_is_data_shown_in_help_and_overridable(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["ensemble", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--model lenet5-bn --members 3 --epochs 15" in shown
    args = cli.parse_args(["ensemble", "--recipe", "flagship", "--batch-size", "64", "--final-weights"])
    assert (args.batch_size, args.model, args.final_weights) == (64, "lenet5-bn", True)
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)


def test_parser_functions_stay_short() -> None:
    long = {
        name: len(inspect.getsource(obj).splitlines())
        for name, obj in vars(cli).items()
        if inspect.isfunction(obj) and obj.__module__ == cli.__name__
    }
    assert {name: n for name, n in long.items() if n > 60} == {}


def test_label_smoothing_changes_the_training_loss(tiny, tmp_path: Path) -> None:
    import keras
    import numpy as np

    from lenet_tf.data import split_data
    from lenet_tf.models import classic_lenet5
    from lenet_tf.training import compiled_trainer, train

    labels = np.array([3, 7])
    probabilities = np.full((2, 10), 0.05, dtype="float32")
    probabilities[0, 3] = probabilities[1, 1] = 0.55
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(keras.ops.one_hot(labels, 10), probabilities)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    trainer = compiled_trainer(classic_lenet5(), TrainConfig(label_smoothing=0.2), seed=0)
    assert float(trainer.loss(labels, probabilities)) == pytest.approx(float(smoothed), rel=1e-6)
    assert float(smoothed) != pytest.approx(float(plain), rel=1e-3)
    assert compiled_trainer(classic_lenet5(), TrainConfig(), seed=0).loss == "sparse_categorical_crossentropy"
    # A member trained with it saves and loads like any other.
    config = TrainConfig(epochs=1, batch_size=64, label_smoothing=0.1)
    model, result = train(classic_lenet5, split_data(tiny, "deployment"), config=config, progress=False)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").count_params() == model.count_params()
    with pytest.raises(LenetError, match=r"^label_smoothing must be a number in \[0, 1\), got 1.0$"):
        TrainConfig(label_smoothing=1.0).validate()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--seed", "8589934592"], "argument --seed: must be an integer in [0, 4294967295], got '8589934592'"),
        (["evaluate", "--split-seed", "4294967296"], "argument --split-seed: must be an integer in [0, 4294967295]"),
        (["baselines", "--jobs", "0"], "--jobs must be -1 (every core) or a number of cores ≥ 1, not 0"),
    ],
)
def test_values_numpy_or_scikit_learn_would_reject_are_refused_first(argv, message, capsys) -> None:
    """A seed above 2**32 - 1 ended in scikit-learn's InvalidParameterError traceback (or after
    config.json was written); --jobs 0 in joblib's ValueError."""
    try:
        status = cli.main([*argv, "--data", "/nonexistent/train.csv"])
    except SystemExit as exc:  # argparse's own errors exit from parse_args
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
