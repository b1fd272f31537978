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
        description="Train LeNet networks and ensembles on the Kaggle Digit Recognizer data and write submissions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", help="data source (see below); default: ./data/ or the embedded sample")
        p.add_argument("--test", help="test.csv to go with a train.csv given as --data")

    def train_options(p: argparse.ArgumentParser, members_default: int, model_default: str) -> None:
        data_options(p)
        p.add_argument("--model", default=model_default, help=f"one of {', '.join(BUILDERS)} (default {model_default})")
        p.add_argument("--hparams", help="JSON hyperparameters for --model optimized (default: the published preset)")
        p.add_argument(
            "--members",
            type=_int_at_least(1),
            default=members_default,
            help=f"number of independently trained models averaged (default {members_default})",
        )
        p.add_argument("--out", help="run directory (default results/<model> or results/ensemble)")
        p.add_argument("--submission", help="submission CSV path (default <out>/submission.csv)")
        p.add_argument(
            "--split",
            choices=PROTOCOLS,
            default="deployment",
            help="deployment: 70/30 train/val (default); evaluation: 60/20/20 train/val/test",
        )
        p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the members (default 0)")
        p.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
        p.add_argument("--epochs", type=_int_at_least(1), default=100, help="epoch cap (default 100)")
        p.add_argument("--batch-size", type=_int_at_least(1), default=32, help="default 32")
        p.add_argument("--patience", type=_int_at_least(0), default=5, help="early-stopping patience (default 5)")
        p.add_argument(
            "--max-train",
            type=_int_at_least(1),
            help="use a stratified subset of this many labeled rows (quick runs)",
        )
        p.add_argument(
            "--force", action="store_true", help="replace a different run in --out and an existing submission"
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p_train = sub.add_parser(
        "train",
        help="train one model and write its submission",
        description="Train one LeNet (resumable) and write metrics and a submission.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_options(p_train, members_default=1, model_default="standard")

    p_ens = sub.add_parser(
        "ensemble",
        help="train an ensemble and write its submission",
        description="Train N LeNets (each saved when it finishes; rerun to resume), average "
        "their probabilities, write metrics and a submission.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_options(p_ens, members_default=10, model_default="optimized")

    p_pred = sub.add_parser(
        "predict",
        help="write a submission from a finished run",
        description="Load a run's saved members and write a Kaggle submission for the test images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_options(p_pred)
    p_pred.add_argument("--run", required=True, help="run directory (holding members/member_XX.keras)")
    p_pred.add_argument("--output", required=True, help="submission CSV to write")
    p_pred.add_argument("--members", type=_int_at_least(1), help="use only the first N members")
    p_pred.add_argument("--force", action="store_true", help="overwrite an existing, different submission")

    sub.add_parser("models", help="list the registered models with their parameter counts")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "models":
        from .models import BUILDERS

        for name, builder in BUILDERS.items():
            model = builder()
            print(f"{name:10s} {model.name:16s} {model.count_params():>7,d} parameters")
        return

    # Data first: it needs no TensorFlow, so a bad file is reported before TF's start-up.
    from .data import load_data

    data = load_data(args.data, test=args.test)

    from . import pipeline

    if args.command == "predict":
        pipeline.predict_run(args.run, args.output, data=data, source=args.data, members=args.members, force=args.force)
        return

    from .training import TrainConfig

    spec = pipeline.JobSpec(
        model=args.model,
        members=args.members,
        protocol=args.split,
        seed=args.seed,
        split_seed=args.split_seed,
        max_train=args.max_train,
        hparams_path=args.hparams,
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience),
    )
    default_out = "results/ensemble" if args.command == "ensemble" else f"results/{args.model}"
    pipeline.run_training(
        spec,
        args.out or default_out,
        data=data,
        source=args.data,
        submission=args.submission,
        force=args.force,
        progress=not args.no_progress,
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
