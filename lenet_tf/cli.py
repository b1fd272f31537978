"""The ``lenet-tf`` command: a thin layer over :mod:`lenet_tf.pipeline`.

Every user error prints one line, ``lenet-tf: error: …``, on stderr and exits with status 2;
an interrupted run exits with 130 and resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
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


def build_parser() -> argparse.ArgumentParser:
    from .data import PROTOCOLS
    from .models import BUILDERS

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
        p.add_argument("--hparams", help="JSON hyperparameters for --model optimized (default: the published preset)")
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

    sub.add_parser("models", help="list the registered models with their parameter counts")
    return parser


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

    # Data first: it needs no TensorFlow, so a bad file is reported before TF's start-up.
    from .data import load_data

    fractions = None
    if args.command == "learning-curve":
        from .learning_curve import parse_fractions

        fractions = parse_fractions(args.fractions)
    data = load_data(args.data, test=args.test)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lenet-tf``; returns the exit status."""
    # TensorFlow's C++ start-up chatter hides the package's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen in logs
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
