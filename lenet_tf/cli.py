"""The ``lenet-tf`` command: a thin layer over :mod:`lenet_tf.pipeline`.

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
from collections.abc import Iterator, Mapping, Sequence
from typing import NoReturn

from .errors import LenetError

EPILOG = """\
data (--data): a directory with train.csv/test.csv, the competition zip (digit-recognizer.zip),
a train.csv path (with --test PATH for its test.csv), 'sample' for the embedded 5,000-digit MNIST
sample, or 'mnist' for keras.datasets (needs the internet). Without --data: ./data/ when it holds
the Kaggle files, else the embedded sample.

examples:
  lenet-tf ensemble --data digit-recognizer.zip            # 10 optimized LeNets + submission
  lenet-tf train --model classic --data data/ --out results/classic
  lenet-tf predict --run results/ensemble --data data/ --output submission.csv
  lenet-tf tune --data digit-recognizer.zip --trials 200     # Bayesian search → results/tune/
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

Cost on a 2-core CPU (the development machine trains the standard LeNet at ~14 s per epoch on
29,400 images; the search's models take ~1-3x that): bayesian/random, 200 trials of ≤ 100
epochs, early stopping typically after 20-40: about 1-3 days. --tuner hyperband (--epochs 10):
30 trials, ≤ 120 epochs in all: about 30-90 minutes, the cheap option. --max-train N shrinks every
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


def _int_at_least(low: int):
    """argparse type: an integer ≥ low (argparse prefixes the message with the option's name)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .data import PROTOCOLS
    from .models import BUILDERS, DEFAULT_BEST_HPARAMS

    parser = _Parser(
        prog="lenet-tf",
        description="Train LeNet networks and ensembles on the Kaggle Digit Recognizer data, evaluate them "
        "as the reference study does, and write submissions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_text, description=description, epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", help="data source (see below); default: ./data/ or the embedded sample")
        p.add_argument("--test", help="test.csv to go with a train.csv given as --data")

    def model_options(p: argparse.ArgumentParser, *, model: str, members: int | None, choices: str) -> None:
        data_options(p)
        p.add_argument("--model", default=model, help=f"one of {choices} (default {model})")
        p.add_argument(
            "--hparams",
            help=f"JSON hyperparameters for --model optimized (default: {DEFAULT_BEST_HPARAMS} when it exists,"
            " else the published ones; 'preset' for the published ones)",
        )
        p.add_argument(
            "--members", type=_int_at_least(1), default=members,
            help=f"independently trained models averaged (default {members or '1; 10 for --model ensemble'})",
        )  # fmt: skip
        p.add_argument("--out", help="run directory (default under results/)")
        p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the trainings (default 0)")
        p.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
        p.add_argument("--max-train", type=_int_at_least(1), help="stratified subset of this many labeled rows")
        p.add_argument("--force", action="store_true", help="replace a different run in --out (and a submission)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def fit_options(p: argparse.ArgumentParser, *, epochs: int = 100, patience: int = 5) -> None:
        p.add_argument("--epochs", type=_int_at_least(1), default=epochs, help=f"epoch cap (default {epochs})")
        p.add_argument("--batch-size", type=_int_at_least(1), default=32, help="default 32")
        p.add_argument(
            "--patience", type=_int_at_least(0), default=patience, help=f"early-stopping patience (default {patience})"
        )

    names = ", ".join(BUILDERS)
    for name, members, model, help_text, description in (
        ("train", 1, "standard", "train one model and write its submission",
         "Train one LeNet (resumable) and write metrics and a submission."),
        ("ensemble", 10, "optimized", "train an ensemble and write its submission",
         "Train N LeNets (each saved when it finishes; rerun to resume), average their probabilities, "
         "write metrics and a submission."),
    ):  # fmt: skip
        p = command(name, help_text, description)
        model_options(p, model=model, members=members, choices=names)
        fit_options(p)
        p.add_argument(
            "--split", choices=PROTOCOLS, default="deployment",
            help="deployment: 70/30 train/val (default); evaluation: 60/20/20 train/val/test",
        )  # fmt: skip
        p.add_argument("--submission", help="submission CSV path (default <out>/submission.csv)")

    p_eval = command(
        "evaluate",
        "repeated trainings: accuracy, ROC AUC, confusion matrices",
        "Train the model R times (K members each) on the evaluation split 60/20/20 and report mean ± std, "
        "95 % CI, per-class ROC AUC and confusion matrices on the held-out part (resumable).",
    )
    model_options(p_eval, model="standard", members=None, choices=f"{names}, ensemble")
    fit_options(p_eval)
    p_eval.add_argument("--repeats", type=_int_at_least(1), default=10, help="repeated trainings (default 10)")

    p_curve = command(
        "learning-curve",
        "accuracy against the training-set size",
        "Train on stratified fractions of the evaluation train split, R repeats each, and plot train and "
        "test accuracy (mean ± std) against the number of training images (resumable).",
    )
    model_options(p_curve, model="standard", members=None, choices=f"{names}, ensemble")
    fit_options(p_curve, epochs=1000, patience=10)
    p_curve.add_argument("--repeats", type=_int_at_least(1), default=20, help="repeats per size (default 20)")
    p_curve.add_argument(
        "--fractions", default="0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1",
        help="comma-separated fractions of the train split (default 0.01,…,0.1)",
    )  # fmt: skip

    p_cmp = command(
        "compare",
        "table of finished evaluations beside the reference study",
        "Collect every evaluation.json under --results into one Markdown table with the reference figures.",
    )
    p_cmp.add_argument("--results", default="results", help="directory searched for evaluations (default results)")
    p_cmp.add_argument("--output", default="results/report.md", help="Markdown report (default results/report.md)")

    p_pred = command(
        "predict",
        "write a submission from a finished run",
        "Load a run's saved members and write a Kaggle submission for the test images.",
    )
    data_options(p_pred)
    p_pred.add_argument("--run", required=True, help="run directory (holding members/member_XX.keras)")
    p_pred.add_argument("--output", required=True, help="submission CSV to write")
    p_pred.add_argument("--members", type=_int_at_least(1), help="use only the first N members")
    p_pred.add_argument("--force", action="store_true", help="overwrite an existing, different submission")

    p_tune = command("tune", "hyperparameter search with keras-tuner (resumable, several machines)", TUNE_DESCRIPTION)
    data_options(p_tune)
    p_tune.add_argument(
        "--tuner", choices=("bayesian", "hyperband", "random"), default="bayesian",
        help="bayesian optimization (default), hyperband (the cheap option) or random search",
    )  # fmt: skip
    p_tune.add_argument(
        "--trials", type=_int_at_least(1), help="trials of bayesian/random (default 200); not for hyperband"
    )
    p_tune.add_argument(
        "--epochs", type=_int_at_least(1),
        help="epoch cap per trial (default 100; hyperband: its max epochs, default 10)",
    )  # fmt: skip
    p_tune.add_argument("--batch-size", type=_int_at_least(1), default=32, help="default 32")
    p_tune.add_argument("--patience", type=_int_at_least(0), default=5, help="early-stopping patience (default 5)")
    p_tune.add_argument(
        "--seed", type=_int_at_least(0), default=0, help="seed of every trial and the tuner (default 0)"
    )
    p_tune.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
    p_tune.add_argument("--max-train", type=_int_at_least(1), help="stratified subset of this many labeled rows")
    p_tune.add_argument(
        "--out",
        default=str(DEFAULT_BEST_HPARAMS.parent),
        help=f"results directory (default {DEFAULT_BEST_HPARAMS.parent})",
    )
    p_tune.add_argument(
        "--overwrite", "--force", dest="overwrite", action="store_true",
        help="discard the search in --out and start afresh (chief or single machine)",
    )  # fmt: skip
    p_tune.add_argument("--no-progress", action="store_true", help="no progress bars or keras-tuner trial tables")
    dist = p_tune.add_argument_group("several machines (keras-tuner's chief/worker mode)")
    dist.add_argument("--role", choices=("chief", "worker"), help="this process's part; omit on one machine")
    dist.add_argument("--oracle-ip", help="the chief's address (the chief may listen on 0.0.0.0)")
    dist.add_argument("--oracle-port", type=_port, help="the chief's port")
    dist.add_argument("--tuner-id", help="a worker's unique name (default worker-HOSTNAME)")

    p_explore = command(
        "explore",
        "data exploration: figures and a Markdown summary",
        "Write PNG figures (random digits with labels, label distribution and its share in every split, "
        "pixel statistics, a PCA scatter, the mean digit; with --model-run, test digits with the run's "
        "predictions) and summary.md / summary.json to --out.",
    )
    data_options(p_explore)
    p_explore.add_argument("--out", default="results/explore", help="output directory (default results/explore)")
    p_explore.add_argument("--model-run", help="run directory whose saved model(s) predict a grid of test digits")
    p_explore.add_argument("--members", type=_int_at_least(1), help="use only the first N members of --model-run")
    p_explore.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the random samples (default 0)")

    sub.add_parser("models", help="list the registered models with their parameter counts")
    return parser


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


def _run(args: argparse.Namespace) -> None:
    if args.command == "models":
        from .models import BUILDERS

        for name, builder in BUILDERS.items():
            model = builder()
            print(f"{name:10s} {model.name:16s} {model.count_params():>7,d} parameters")
        return
    if args.command == "compare":
        from .report import compare

        print(f"report: {compare(args.results, args.output)}")
        return

    env = _distributed_env(args) if args.command == "tune" else {}

    # Data first: it needs no TensorFlow, so a bad file is reported before TF's start-up.
    from .data import load_data

    fractions = None
    if args.command == "learning-curve":
        from .learning_curve import parse_fractions

        fractions = parse_fractions(args.fractions)
    data = load_data(args.data, test=args.test)
    if args.command == "explore":
        from .exploration import explore

        explore(data, args.out, model_run=args.model_run, members=args.members, seed=args.seed)
        return

    if args.command == "tune":
        with _environment(env):  # before keras-tuner's import: it reads them
            from .tuning import TuneSpec, tune

            spec = TuneSpec(
                tuner=args.tuner, max_trials=args.trials, epochs=args.epochs, batch_size=args.batch_size,
                patience=args.patience, seed=args.seed, split_seed=args.split_seed, max_train=args.max_train,
            )  # fmt: skip
            tune(spec, args.out, data=data, overwrite=args.overwrite, progress=not args.no_progress)
        return

    if args.command == "predict":
        from .pipeline import predict_run

        predict_run(args.run, args.output, data=data, members=args.members, force=args.force)
        return

    from .training import TrainConfig

    fit = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience)
    model, members = _model_and_members(args)
    common = {
        "model": model, "members": members, "seed": args.seed, "split_seed": args.split_seed,
        "max_train": args.max_train, "hparams_path": args.hparams, "train": fit,
    }  # fmt: skip
    label = "ensemble" if args.model == "ensemble" else model
    options = {"data": data, "force": args.force, "progress": not args.no_progress}
    if args.command == "evaluate":
        from .evaluation import EvaluationSpec, evaluate

        evaluate(EvaluationSpec(repeats=args.repeats, **common), args.out or f"results/evaluate-{label}", **options)
    elif args.command == "learning-curve":
        from .learning_curve import LearningCurveSpec, learning_curve

        spec = LearningCurveSpec(repeats=args.repeats, fractions=fractions, **common)
        learning_curve(spec, args.out or f"results/learning-curve-{label}", **options)
    else:
        from .pipeline import JobSpec, run_training

        default_out = "results/ensemble" if args.command == "ensemble" else f"results/{model}"
        run_training(
            JobSpec(protocol=args.split, **common), args.out or default_out, submission=args.submission, **options
        )


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
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lenet-tf``; returns the exit status."""
    # TensorFlow's C++ start-up chatter hides the package's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen in logs
    quiet_tensorflow_import()  # build_parser already needs the model registry, hence Keras
    args = build_parser().parse_args(argv)
    try:
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
