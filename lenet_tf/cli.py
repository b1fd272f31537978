"""The ``lenet-tf`` command: a thin layer over the library, its parser assembled from the option
fields of :mod:`lenet_tf.options` and one dispatch table (:data:`COMMANDS`).

``--help`` imports neither TensorFlow nor Keras: a command imports them when it runs.

Every user error prints one line, ``lenet-tf: error: …``, on stderr and exits with status 2;
an interrupted run exits with 130 and resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from . import interrupts
from . import options as opt
from .errors import LenetError

EPILOG = """\
data (--data): a directory with train.csv/test.csv, the competition zip (digit-recognizer.zip),
a train.csv path (with --test PATH for its test.csv), 'sample' for the embedded 5,000-digit MNIST
sample, or 'mnist' for keras.datasets (needs the internet). Without --data: ./data/ when it holds
the Kaggle files, else the embedded sample.

examples:
  lenet-tf ensemble --data digit-recognizer.zip            # 10 optimized LeNets + submission
  lenet-tf train --model classic --data data/ --out results/classic
  lenet-tf predict --run results/ensemble --data data/ --submission submission.csv
  lenet-tf tune --data digit-recognizer.zip --trials 200     # Bayesian search → results/tune/
  lenet-tf baselines --data digit-recognizer.zip             # kNN / random-forest grids → results/baselines/
  lenet-tf robustness --model standard --data data/          # FGSM, adversarial training → results/robustness-standard/
  lenet-tf study --name activation --data data/              # training study → results/study-activation/
"""

# keras-tuner's distributed mode reads these; they are set before keras-tuner is imported.
TUNER_ID_ENV = "KERASTUNER_TUNER_ID"
ORACLE_IP_ENV = "KERASTUNER_ORACLE_IP"
ORACLE_PORT_ENV = "KERASTUNER_ORACLE_PORT"

TUNE_DESCRIPTION = """\
Search the optimized LeNet's 12 hyperparameters (the reference study's space) with keras-tuner:
every trial trains on the evaluation split's train part (batch 32, early stopping patience 5) and
is scored by its best validation accuracy. Writes best_hparams.json (used by --model optimized
from then on), trials.csv, trial_epochs.csv, optimization_history.png, intermediate_values.png,
hparam_importance.png and summary.md to --out. Rerun the same command to resume (an interrupted
trial is run again); a larger --trials extends a finished search; --overwrite starts afresh.

Cost on a 2-core CPU (the development machine trains the standard LeNet at 14-40 s per epoch
on 29,400 images, its speed varying from day to day; the search's models take ~1-3x that):
bayesian/random, 200 trials of ≤ 100 epochs, early stopping typically after 20-40: days.
--tuner hyperband (--epochs 10): 30 trials, ≤ 120 epochs in all: about 1-2 hours (its first
bracket, 18 trials, took 40 minutes), the cheap option. --max-train N shrinks every
epoch in proportion.

Several machines: start one chief (--role chief --oracle-ip ADDRESS --oracle-port PORT; ADDRESS
0.0.0.0 listens on every interface) and any number of workers (--role worker --oracle-ip
CHIEF_ADDRESS --oracle-port PORT --tuner-id NAME, NAME unique per worker) with the same data and
search options. The chief hands out trials and writes the results; workers train.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lenet-tf: error: {message} (see {self.prog} --help)\n")


def _flag(key: str, value: object) -> str:
    """``--key value`` (or ``--key`` for a true switch) as the help text shows a recipe."""
    flag = "--" + key.replace("_", "-")
    return flag if value is True else f"{flag} {value}"


# A group: (title, option class, parser defaults by destination). The defaults are data too:
# the command line's own choice where it differs from the library's (train's model, say).
Group = tuple[str, type, Mapping[str, Any]]


def _fit_defaults(spec: type) -> dict[str, Any]:
    """The fit options' defaults of ``spec``: those of its ``train`` field's default."""
    train = next(f for f in fields(spec) if f.name == "train").default_factory()
    return opt.values_to_dests(train)


def _test_file(spec: type | None = None) -> list[Group]:
    """``--test``, for the commands that predict test digits (train, ensemble, predict, explore)."""
    return [("test file", opt.TestFileOptions, {})] if spec in (None, opt.JobOptions) else []


def _groups(
    spec: type, defaults: Mapping[str, Any], *, fit: bool = True, output: str | None = None, runner: bool = False
) -> list[Group]:
    """The usual groups: data, the spec's own options, the fit options, output, progress; and, for
    the experiments the shared runner serves (``runner``), where their items run."""
    groups: list[Group] = [("data", opt.DataOptions, {}), *_test_file(spec), ("options", spec, defaults)]
    if fit:
        groups.append(("fit options", opt.TrainConfig, _fit_defaults(spec)))
    groups += [("output", opt.OutputOptions, {"out": output}), ("progress", opt.ProgressOptions, {})]
    if runner:
        groups.append(("executor (docs/cluster.md)", opt.ExecutorOptions, {}))
    return groups


@dataclass(frozen=True)
class Command:
    """One subcommand: its help, its option groups, the function that runs it."""

    help: str
    description: str
    groups: Sequence[Group]
    run: Callable[[argparse.Namespace], None]
    extra: Callable[[argparse.ArgumentParser], None] | None = None  # options outside the specs


# One default for `lenet-tf ensemble` and `make ensemble`: the flagship, the package's recipe for a
# submission (minutes); the reference's 10 optimized LeNets take hours on a CPU (make ensemble-reference).
ENSEMBLE_RECIPE = "flagship"


def _recipe(parser: argparse.ArgumentParser) -> None:
    flagship = " ".join(_flag(k, v) for k, v in opt.FLAGSHIP.items())
    parser.add_argument(
        "--recipe", choices=tuple(opt.RECIPES), default=ENSEMBLE_RECIPE,
        help=f"defaults of the options above: flagship ({flagship}; make ensemble) or reference (the study's "
        "10 optimized LeNets, hours on a CPU; make ensemble-reference); options given explicitly still win",
    )  # fmt: skip


def _tune_extra(parser: argparse.ArgumentParser) -> None:
    out = opt.default_out("tune")
    parser.add_argument("--out", default=out, help=f"results directory (default {out})")
    parser.add_argument(
        "--overwrite", "--force", dest="overwrite", action="store_true",
        help="discard the search in --out and start afresh (chief or single machine)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or keras-tuner trial tables")
    opt.add_options(parser.add_argument_group("several machines (keras-tuner's chief/worker mode)"),
                    opt.DistributedOptions)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``lenet-tf`` parser: one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(
        prog="lenet-tf",
        description="Train LeNet networks and ensembles on the Kaggle Digit Recognizer data, evaluate them "
        "as the reference study does, and write submissions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    commands: dict[str, argparse.ArgumentParser] = {}
    parser.set_defaults(_commands=commands)  # parse_args re-parses under --recipe's defaults
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name, help=command.help, description=command.description, epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        for title, cls, defaults in command.groups:
            title = f"{name} options" if title == "options" else title  # argparse's own "options" holds -h
            opt.add_options(p.add_argument_group(title), cls, defaults=defaults)
        if command.extra is not None:
            command.extra(p)
        commands[name] = p
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--recipe flagship`` swaps in the flagship's defaults, which
    options given explicitly still override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    recipe = opt.RECIPES.get(getattr(args, "recipe", None) or "reference")  # commands without --recipe: none
    if recipe:
        args._commands[args.command].set_defaults(**recipe)
        args = parser.parse_args(argv)
    return args


def _distributed_env(args: argparse.Namespace) -> dict[str, str]:
    """keras-tuner's environment variables for ``--role`` (none without it)."""
    given = [f"--{name.replace('_', '-')}" for name in ("oracle_ip", "oracle_port", "tuner_id") if getattr(args, name)]
    if args.role is None:
        if given:
            raise LenetError(f"{given[0]} applies with --role chief or --role worker only")
        return {}
    if not args.oracle_ip:
        raise LenetError(f"--role {args.role} needs --oracle-ip (the chief's address; the chief may use 0.0.0.0)")
    if args.oracle_port is None:
        raise LenetError(f"--role {args.role} needs --oracle-port")
    if args.role == "chief":
        if args.tuner_id:
            raise LenetError("--tuner-id names a worker; the chief's id is always 'chief'")
        tuner_id = "chief"
    else:
        tuner_id = args.tuner_id or f"worker-{socket.gethostname()}"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", tuner_id):
            raise LenetError(f"--tuner-id {tuner_id!r}: use letters, digits, '.', '_' or '-' only")
        if "chief" in tuner_id:
            raise LenetError(f"--tuner-id {tuner_id!r}: a worker's id must not contain 'chief' (keras-tuner's mark)")
    return {TUNER_ID_ENV: tuner_id, ORACLE_IP_ENV: args.oracle_ip, ORACLE_PORT_ENV: str(args.oracle_port)}


@contextlib.contextmanager
def _environment(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore them after (main() may be called
    in-process, by tests for example)."""
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _model_and_members(args: argparse.Namespace) -> tuple[str, int]:
    """``--model ensemble`` is the optimized LeNet with 10 members (the study's ensemble)."""
    if args.model == "ensemble":
        return "optimized", args.members or 10
    return args.model, args.members or 1


def _run_name(run: str) -> str:
    """A short name for a run directory: its own, or ``<evaluation>-repeat_01`` for a repeat."""
    path = Path(run).resolve()
    return f"{path.parent.parent.name}-{path.name}" if path.parent.name == "repeats" else path.name


def _fit(args: argparse.Namespace) -> Any:
    return opt.TrainConfig(**opt.values_for(opt.TrainConfig, args))


def _spec_kwargs(cls: type, args: argparse.Namespace, **resolved: Any) -> dict[str, Any]:
    """Keyword arguments of ``cls`` (a spec class or its options class) from ``args``, checked
    against its fields and rules in the command line's words (``--augment``), before any data
    is read or TensorFlow started."""
    kwargs = opt.values_for(cls, args, **resolved)
    if any(f.name == "train" for f in fields(cls)):
        kwargs["train"] = _fit(args)
    opt.validate(cls(**kwargs), opt.cli_words(cls))
    return kwargs


def _data(args: argparse.Namespace, *, tensorflow: bool = True) -> Any:
    """The data (read before TensorFlow starts: a bad file is reported at once), then TensorFlow.
    ``predict`` reads the test images alone: it never uses the training rows."""
    from .data import load_data, load_test_data

    data = (load_test_data if args.command == "predict" else load_data)(args.data, test=getattr(args, "test", None))
    if tensorflow:
        quiet_tensorflow_import()
    return data


def _out(args: argparse.Namespace, default: str | None = None, *, files: Sequence[str | Path] = ()) -> str:
    """``--out`` (else ``default``), checked with the output ``files`` before any data is read: a path
    that cannot be written is named at once, not after the training."""
    from .rundir import check_output

    out = args.out or default
    check_output(out, directory=True)
    for path in files:
        check_output(path)
    return out


def _common(args: argparse.Namespace) -> dict[str, Any]:
    common = {"force": args.force, "progress": not args.no_progress}
    if hasattr(args, "executor"):
        common["executor"] = args.executor_
    return common


def _models(args: argparse.Namespace) -> None:
    quiet_tensorflow_import()
    from .models import BUILDERS

    for name, builder in BUILDERS.items():
        model = builder()
        print(f"{name:13s} {model.name:16s} {model.count_params():>7,d} parameters")


def _compare(args: argparse.Namespace) -> None:
    from .rundir import check_output

    check_output(args.output)  # before TensorFlow starts or any evaluation is read
    quiet_tensorflow_import()
    from .experiments.report import compare

    print(f"report: {compare(args.results, args.output, force=args.force)}")


def _train(args: argparse.Namespace) -> None:
    model, members = _model_and_members(args)
    kwargs = _spec_kwargs(opt.JobOptions, args, model=model, members=members)
    out = args.out or (opt.default_out("ensemble") if args.command == "ensemble" else opt.default_out("train", model))
    _out(args, out, files=[args.submission or Path(out) / "submission.csv"])
    data = _data(args)
    from .pipeline import JobSpec, run_training

    spec = JobSpec(**kwargs)
    run_training(spec, out, submission=args.submission, data=data, **_common(args))


def _evaluate(args: argparse.Namespace) -> None:
    model, members = _model_and_members(args)
    kwargs = _spec_kwargs(opt.EvaluationOptions, args, model=model, members=members)
    out = _out(args, opt.default_out("evaluate", args.model))
    data = _data(args)
    from .experiments.evaluation import EvaluationSpec, evaluate

    evaluate(EvaluationSpec(**kwargs), out, data=data, **_common(args))


def _learning_curve(args: argparse.Namespace) -> None:
    model, members = _model_and_members(args)
    kwargs = _spec_kwargs(opt.LearningCurveOptions, args, model=model, members=members)
    out = _out(args, opt.default_out("learning-curve", args.model))
    data = _data(args)
    from .experiments.learning_curve import LearningCurveSpec, learning_curve

    learning_curve(LearningCurveSpec(**kwargs), out, data=data, **_common(args))


def _robustness(args: argparse.Namespace) -> None:
    kwargs = _spec_kwargs(opt.RobustnessOptions, args)
    out = _out(args, opt.default_out("robustness", args.model or _run_name(args.run)))
    data = _data(args)
    from .experiments.robustness import RobustnessSpec, robustness

    robustness(RobustnessSpec(**kwargs), out, data=data, **_common(args))


def _study(args: argparse.Namespace) -> None:
    kwargs = _spec_kwargs(opt.StudyOptions, args)
    only = [label.strip() for label in args.only.split(",") if label.strip()] if args.only else None
    quiet_tensorflow_import()
    from .experiments.studies import StudySpec, study, study_configurations

    configurations = tuple(study_configurations(args.name, only))
    out = _out(args, opt.default_out("study", args.name))
    data = _data(args)
    spec = StudySpec(configurations=configurations, **kwargs)
    study(spec, out, data=data, **_common(args))


def _predict(args: argparse.Namespace) -> None:
    from .rundir import check_output

    check_output(args.submission)  # before the test images are read
    data = _data(args)
    from .pipeline import predict_run

    predict_run(args.run, args.submission, data=data, members=args.members, force=args.force, tta=args.tta)


def _explore(args: argparse.Namespace) -> None:
    _spec_kwargs(opt.ExploreOptions, args)
    _out(args)
    data = _data(args, tensorflow=args.run is not None)  # the figures alone need no TensorFlow
    from .experiments.exploration import explore

    explore(data, args.out, model_run=args.run, members=args.members, seed=args.seed)


def _baselines(args: argparse.Namespace) -> None:
    kwargs = _spec_kwargs(opt.BaselineOptions, args)
    _out(args)
    data = _data(args)
    from .experiments.baselines import BaselineSpec, baselines

    baselines(BaselineSpec(**kwargs), args.out, data=data, **_common(args))


def _tune(args: argparse.Namespace) -> None:
    env = _distributed_env(args)
    kwargs = _spec_kwargs(opt.TuneOptions, args)
    _out(args)
    data = _data(args)
    with _environment(env):  # before keras-tuner's import: it reads them
        from .experiments.tuning import TuneSpec, tune

        tune(TuneSpec(**kwargs), args.out, data=data, overwrite=args.overwrite, progress=not args.no_progress)


_MODEL = {"members": None}  # evaluate, learning-curve: 1, or 10 for --model ensemble
COMMANDS: dict[str, Command] = {
    "train": Command(
        "train one model and write its submission", "Train one LeNet (resumable) and write metrics and a submission.",
        [*_groups(opt.JobOptions, {"model": "standard", "members": 1}), ("submission", opt.SubmissionOptions, {})],
        _train,
    ),
    "ensemble": Command(
        "train an ensemble and write its submission",
        "Train N LeNets (each saved when it finishes; rerun to resume), average their probabilities, "
        "write metrics and a submission.",
        [*_groups(opt.JobOptions, {"members": 10}), ("submission", opt.SubmissionOptions, {})], _train, extra=_recipe,
    ),
    "evaluate": Command(
        "repeated trainings: accuracy, ROC AUC, confusion matrices",
        "Train the model R times (K members each) on the evaluation split 60/20/20 and report mean ± std, "
        "95 % CI, per-class ROC AUC and confusion matrices on the held-out part (resumable). --model ensemble "
        "is the study's ensemble (10 optimized LeNets).",
        _groups(opt.EvaluationOptions, _MODEL, runner=True), _evaluate,
    ),
    "learning-curve": Command(
        "accuracy against the training-set size",
        "Train on stratified fractions of the evaluation train split, R repeats each, and plot train and "
        "test accuracy (mean ± std) against the number of training images (resumable).",
        _groups(opt.LearningCurveOptions, _MODEL, runner=True), _learning_curve,
    ),
    "compare": Command(
        "table of finished evaluations beside the reference study",
        "Collect every evaluation.json under --results into one Markdown table with the reference figures.",
        [("options", opt.CompareOptions, {})], _compare,
    ),
    "predict": Command(
        "write a submission from a finished run",
        "Load a run's saved members and write a Kaggle submission for the test images.",
        [("data", opt.DataOptions, {}), *_test_file(), ("options", opt.PredictOptions, {})], _predict,
    ),
    "tune": Command(
        "hyperparameter search with keras-tuner (resumable, several machines)", TUNE_DESCRIPTION,
        [("data", opt.DataOptions, {}), ("search", opt.TuneOptions, {})], _tune, extra=_tune_extra,
    ),
    "explore": Command(
        "data exploration: figures and a Markdown summary",
        "Write PNG figures (random digits with labels, label distribution and its share in every split, "
        "pixel statistics, a PCA scatter, the mean digit; with --run, test digits with the run's "
        "predictions) and summary.md / summary.json to --out.",
        [("data", opt.DataOptions, {}), *_test_file(), ("options", opt.ExploreOptions, {})], _explore,
    ),
    "baselines": Command(
        "kNN (PCA) and random-forest baselines on the evaluation split",
        "Fit kNN on PCA features (k × PCA dimensions) and random forests (trees × max depth) on the "
        "evaluation split 60/20/20 and report validation and test accuracy, per-class ROC AUC, confusion "
        "matrices and fit/predict times as grid tables (resumable per grid cell). The fully connected "
        "network is a Keras model: lenet-tf evaluate --model mlp.",
        _groups(opt.BaselineOptions, {}, fit=False, output=opt.default_out("baselines"), runner=True), _baselines,
    ),
    "robustness": Command(
        "FGSM attack, accuracy against ε, adversarial training",
        "Train --model R times on the evaluation split normally and R times with adversarial training "
        "(FGSM copies at --train-epsilon mixed 1:1 into every batch), or load a finished run (--run DIR), "
        "then attack the held-out digits with FGSM, x' = clip(x + ε·255·sign(∇x loss), 0, 255) on 0-255 pixels, "
        "at every ε: "
        "accuracy-vs-ε table and plot (mean ± std), grids of adversarial examples (resumable).",
        _groups(opt.RobustnessOptions, {}, runner=True), _robustness,
    ),
    "study": Command(
        "training studies: activation, initialization, optimizer, dropout, batch size",
        "Train every configuration of a named study (the standard LeNet with one factor varied) R times "
        "on the evaluation split, record per-layer gradient magnitudes each epoch, and write a comparison "
        "table (mean ± std, 95 % CI) and plots (resumable per configuration and repeat).\n\n"
        "studies: activation (sigmoid, tanh, relu, gelu, elu); initialization (random_normal, "
        "glorot_uniform, he_normal); optimizer (sgd, momentum, adam × learning rate 1e-4, 1e-3, 1e-2, "
        "1e-1, and SGD with step decay 0.1 → 0.01 → 0.001 after epochs 10 and 20); dropout (0, 0.2, 0.5); "
        "batch_size (32, 64, 128).",
        [*_groups(opt.StudyOptions, {}, runner=True), ("subset", opt.StudyFilter, {})], _study,
    ),
    "models": Command("list the registered models with their parameter counts", "", [], _models),
}  # fmt: skip


def _run(args: argparse.Namespace) -> None:
    if hasattr(args, "executor"):  # checked before any command reads data
        from .experiments.executors import executor_from_args

        args.executor_ = executor_from_args(args)
    COMMANDS[args.command].run(args)


def quiet_tensorflow_import() -> None:
    """Import TensorFlow with file descriptor 2 silenced.

    TensorFlow 2.21 writes C++ start-up lines (oneDNN, CUDA stubs, absl) to stderr at import,
    which TF_CPP_MIN_LOG_LEVEL no longer silences; they would bury the package's one-line errors.
    A failed import still raises, and its traceback is printed after stderr is restored.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Python-side notes (tf.function retracing when prediction batches change size) are noise here.
    tensorflow.get_logger().setLevel("ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lenet-tf``; returns the exit status."""
    # TensorFlow's C++ start-up chatter hides the package's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are files: no window, any machine
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen in logs
    args = parse_args(argv)  # no TensorFlow yet: --help and option errors answer at once
    from .data import one_line_warnings

    one_line_warnings()  # data warnings as `lenet-tf: warning: …` lines, not Python's two-line form
    try:
        with interrupts.handle_ctrl_c():
            _run(args)
    except LenetError as exc:
        print(f"lenet-tf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lenet-tf: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lenet-tf: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
