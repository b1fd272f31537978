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
from pathlib import Path
from typing import NoReturn

from . import interrupts
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


def _number_list(kind: type, *, low: float, high: float | None = None, allow_none: bool = False):
    """argparse type: comma-separated numbers (``kind`` int or float) in [low, high], in the order
    given without duplicates; ``none`` is None when ``allow_none``."""
    bounds = f"in [{low:g}, {high:g}]" if high is not None else f"≥ {low:g}"
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> tuple:
        values: list = []
        for item in text.split(","):
            item = item.strip()
            if allow_none and item.lower() == "none":
                value = None
            else:
                try:
                    value = kind(item)
                except ValueError:
                    value = None
                if value is None or value != value or value < low or (high is not None and value > high):
                    extra = " or 'none'" if allow_none else ""
                    raise argparse.ArgumentTypeError(f"{item!r} is not {noun} {bounds}{extra}")
            if value not in values:
                values.append(value)
        return tuple(values)

    return parse


def _number_in(low: float, high: float):
    """argparse type: a number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number in [{low:g}, {high:g}], got {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 10], got {text!r}")
    return value


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes, got {text!r}")
    return value


def _flag(key: str, value: object) -> str:
    """``--key value`` (or ``--key`` for a true switch) as the help text shows a recipe."""
    flag = "--" + key.replace("_", "-")
    return flag if value is True else f"{flag} {value}"


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (an ε on [0, 1] pixels)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


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
    from .ensemble import FLAGSHIP
    from .models import BUILDERS, DEFAULT_BEST_HPARAMS
    from .training import AUGMENT_ROTATION, AUGMENT_SHIFT, AUGMENT_ZOOM, INPUT_PIPELINES, LR_SCHEDULES

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
        p.add_argument("--test", help="test.csv to predict instead of the --data source's own")

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
        p.add_argument(
            "--augment",
            action="store_true",
            help="random shifts, rotations and zoom of the training images (strengths below)",
        )
        p.add_argument(
            "--augment-shift", type=_number_in(0.0, 0.5), default=AUGMENT_SHIFT,
            help=f"with --augment: shift by up to this fraction of the side (default {AUGMENT_SHIFT:g})",
        )  # fmt: skip
        p.add_argument(
            "--augment-rotation", type=_number_in(0.0, 180.0), default=AUGMENT_ROTATION,
            help=f"with --augment: rotate by up to this many degrees (default {AUGMENT_ROTATION:g})",
        )  # fmt: skip
        p.add_argument(
            "--augment-zoom", type=_number_in(0.0, 0.9), default=AUGMENT_ZOOM,
            help=f"with --augment: zoom in or out by up to this fraction (default {AUGMENT_ZOOM:g})",
        )  # fmt: skip
        p.add_argument(
            "--lr-schedule", choices=LR_SCHEDULES, default="constant",
            help="constant (default), cosine decay to 0 over --epochs, or plateau (halve after 2 flat epochs)",
        )  # fmt: skip
        p.add_argument(
            "--learning-rate", type=_positive_float, help="initial learning rate (default: the model's own, 1e-3 Adam)"
        )
        p.add_argument(
            "--input-pipeline", choices=INPUT_PIPELINES, default="numpy",
            help="numpy arrays into model.fit (default) or a cached, prefetched tf.data pipeline",
        )  # fmt: skip
        p.add_argument(
            "--steps-per-execution", type=_int_at_least(1), default=1, help="batches per compiled call (default 1)"
        )
        p.add_argument(
            "--final-weights", action="store_true",
            help="train all --epochs (no early stopping) and keep the last weights: the validation images then"
            " choose neither weights nor epochs (a recipe tuned on them, as the flagship's was, is still favoured)",
        )  # fmt: skip

    names = ", ".join(BUILDERS)
    commands: dict[str, argparse.ArgumentParser] = {}
    parser.set_defaults(_commands=commands)  # main() re-parses train/ensemble under --recipe's defaults
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
        p.add_argument(
            "--refit", action="store_true",
            help="after training, retrain every member on train + validation images for its best epoch count;"
            " the retrained members write the submission",
        )  # fmt: skip
        p.add_argument(
            "--tta", type=_int_at_least(0), default=0,
            help="test-time augmentation: average over N augmented copies of each image too (default 0)",
        )  # fmt: skip
        p.add_argument(
            "--recipe", choices=("reference", "flagship"), default="reference",
            help="defaults of the options above: reference (the study's protocol) or flagship ("
            + " ".join(_flag(k, v) for k, v in FLAGSHIP.items())
            + "); options given explicitly still win",
        )  # fmt: skip
        commands[name] = p

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
    p_cmp.add_argument("--force", action="store_true", help="replace an existing --output that compare did not write")

    p_pred = command(
        "predict",
        "write a submission from a finished run",
        "Load a run's saved members and write a Kaggle submission for the test images.",
    )
    data_options(p_pred)
    p_pred.add_argument("--run", required=True, help="run directory (holding members/member_XX.keras)")
    p_pred.add_argument("--output", required=True, help="submission CSV to write")
    p_pred.add_argument("--members", type=_int_at_least(1), help="use only the first N members")
    p_pred.add_argument("--tta", type=_int_at_least(0), default=0, help="test-time augmented copies (default 0)")
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
        "--time-budget", type=_positive_minutes, metavar="MINUTES",
        help="start no new trial after this many minutes (the search resumes from there when rerun)",
    )  # fmt: skip
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

    p_base = command(
        "baselines",
        "kNN (PCA) and random-forest baselines on the evaluation split",
        "Fit kNN on PCA features (k × PCA dimensions) and random forests (trees × max depth) on the "
        "evaluation split 60/20/20 and report validation and test accuracy, per-class ROC AUC, confusion "
        "matrices and fit/predict times as grid tables (resumable per grid cell). The fully connected "
        "network is a Keras model: lenet-tf evaluate --model mlp.",
    )
    data_options(p_base)
    p_base.add_argument("--out", default="results/baselines", help="run directory (default results/baselines)")
    p_base.add_argument(
        "--knn-k", type=_number_list(int, low=1), default=(3, 10, 50, 100),
        help="neighbours, comma-separated (default 3,10,50,100)",
    )  # fmt: skip
    p_base.add_argument(
        "--knn-pca", type=_number_list(int, low=1, high=784), default=(5, 25, 50, 100, 784),
        help="PCA dimensions, comma-separated; 784 = no PCA (default 5,25,50,100,784)",
    )  # fmt: skip
    p_base.add_argument(
        "--rf-trees", type=_number_list(int, low=1), default=(10, 100, 200, 400),
        help="trees per forest, comma-separated (default 10,100,200,400)",
    )  # fmt: skip
    p_base.add_argument(
        "--rf-depth", type=_number_list(int, low=1, allow_none=True), default=(10, 20, None),
        help="maximum tree depths, comma-separated; none = unlimited (default 10,20,none)",
    )  # fmt: skip
    p_base.add_argument(
        "--repeats", type=_int_at_least(1), default=1,
        help="fits of every random forest with new seeds (default 1; kNN is deterministic: one fit)",
    )  # fmt: skip
    p_base.add_argument("--jobs", type=_int_at_least(1), help="CPU cores scikit-learn may use (default all)")
    p_base.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the forests and PCA (default 0)")
    p_base.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
    p_base.add_argument("--max-train", type=_int_at_least(1), help="stratified subset of this many labeled rows")
    p_base.add_argument("--force", action="store_true", help="replace a different run in --out")
    p_base.add_argument("--no-progress", action="store_true", help="no progress bars")

    p_rob = command(
        "robustness",
        "FGSM attack, accuracy against ε, adversarial training",
        "Train --model R times on the evaluation split normally and R times with adversarial training "
        "(FGSM copies at --train-epsilon mixed 1:1 into every batch), or load a finished run (--run DIR), "
        "then attack the held-out digits with FGSM, x' = clip(x + ε·sign(∇x loss), 0, 1), at every ε: "
        "accuracy-vs-ε table and plot (mean ± std), grids of adversarial examples (resumable).",
    )
    data_options(p_rob)
    p_rob.add_argument("--model", help=f"one of {names} (needed unless --run gives the model)")
    p_rob.add_argument(
        "--run",
        help="a finished run directory (train/ensemble/evaluate repeat) whose model(s) are attacked instead of"
        " training the normal model; its split and data are used",
    )
    p_rob.add_argument("--hparams", help="JSON hyperparameters for --model optimized (as for train)")
    p_rob.add_argument("--repeats", type=_int_at_least(1), default=3, help="trainings per variant (default 3)")
    p_rob.add_argument(
        "--epsilons", type=_number_list(float, low=0, high=1), default=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
        help="attack strengths, comma-separated, in [0, 1] (default 0,0.05,0.1,0.15,0.2,0.25,0.3)",
    )  # fmt: skip
    p_rob.add_argument(
        "--train-epsilon", type=_fraction, default=0.1, help="ε of the adversarial training's FGSM (default 0.1)"
    )
    p_rob.add_argument(
        "--no-adversarial-training", action="store_true", help="attack the normally trained model(s) only"
    )
    p_rob.add_argument("--examples", type=_int_at_least(1), default=10, help="digits in the example grids (default 10)")
    p_rob.add_argument("--out", help="run directory (default results/robustness-<model>)")
    p_rob.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the trainings (default 0)")
    p_rob.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
    p_rob.add_argument("--max-train", type=_int_at_least(1), help="stratified subset of this many labeled rows")
    fit_options(p_rob)
    p_rob.add_argument("--force", action="store_true", help="replace a different run in --out")
    p_rob.add_argument("--no-progress", action="store_true", help="no progress bars")

    p_study = command(
        "study",
        "training studies: activation, initialization, optimizer, dropout, batch size",
        "Train every configuration of a named study (the standard LeNet with one factor varied) R times "
        "on the evaluation split, record per-layer gradient magnitudes each epoch, and write a comparison "
        "table (mean ± std, 95 % CI) and plots (resumable per configuration and repeat).\n\n"
        "studies: activation (sigmoid, tanh, relu, gelu, elu); initialization (random_normal, "
        "glorot_uniform, he_normal); optimizer (sgd, momentum, adam × learning rate 1e-4, 1e-3, 1e-2, "
        "1e-1, and SGD with step decay 0.1 → 0.01 → 0.001 after epochs 10 and 20); dropout (0, 0.2, 0.5); "
        "batch_size (32, 64, 128).",
    )
    data_options(p_study)
    p_study.add_argument("--name", required=True, help="activation, initialization, optimizer, dropout or batch_size")
    p_study.add_argument(
        "--only", help="comma-separated configuration labels: a subset of the study (e.g. adam_lr0.001,sgd_lr0.1)"
    )
    p_study.add_argument("--repeats", type=_int_at_least(1), default=3, help="trainings per configuration (default 3)")
    p_study.add_argument("--out", help="run directory (default results/study-<name>)")
    p_study.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the trainings (default 0)")
    p_study.add_argument("--split-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")
    p_study.add_argument("--max-train", type=_int_at_least(1), help="stratified subset of this many labeled rows")
    fit_options(p_study)
    p_study.add_argument("--force", action="store_true", help="replace a different run in --out")
    p_study.add_argument("--no-progress", action="store_true", help="no progress bars")

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


def _run_name(run: str) -> str:
    """A short name for a run directory: its own, or ``<evaluation>-repeat_01`` for a repeat."""
    path = Path(run).resolve()
    return f"{path.parent.parent.name}-{path.name}" if path.parent.name == "repeats" else path.name


def _run(args: argparse.Namespace) -> None:
    if args.command == "models":
        from .models import BUILDERS

        for name, builder in BUILDERS.items():
            model = builder()
            print(f"{name:13s} {model.name:16s} {model.count_params():>7,d} parameters")
        return
    if args.command == "compare":
        from .experiments.report import compare

        print(f"report: {compare(args.results, args.output, force=args.force)}")
        return

    env = _distributed_env(args) if args.command == "tune" else {}

    # Data first: it needs no TensorFlow, so a bad file is reported before TF's start-up.
    from .data import load_data

    fractions = None
    if args.command == "learning-curve":
        from .experiments.learning_curve import parse_fractions

        fractions = parse_fractions(args.fractions)
    configurations = None
    if args.command == "study":
        from .experiments.studies import study_configurations

        only = [label.strip() for label in args.only.split(",") if label.strip()] if args.only else None
        configurations = tuple(study_configurations(args.name, only))
    if args.command == "robustness" and args.model is None and args.run is None:
        raise LenetError("robustness needs --model (to train one) or --run DIR (a finished run to attack)")
    from .data import load_test_data  # predict reads the test images alone

    data = (load_test_data if args.command == "predict" else load_data)(args.data, test=args.test)
    if args.command == "explore":
        from .experiments.exploration import explore

        explore(data, args.out, model_run=args.model_run, members=args.members, seed=args.seed)
        return

    if args.command == "tune":
        with _environment(env):  # before keras-tuner's import: it reads them
            from .experiments.tuning import TuneSpec, tune

            spec = TuneSpec(
                tuner=args.tuner, max_trials=args.trials, epochs=args.epochs, batch_size=args.batch_size,
                patience=args.patience, seed=args.seed, split_seed=args.split_seed, max_train=args.max_train,
                time_budget=args.time_budget,
            )  # fmt: skip
            tune(spec, args.out, data=data, overwrite=args.overwrite, progress=not args.no_progress)
        return

    if args.command == "predict":
        from .pipeline import predict_run

        predict_run(args.run, args.output, data=data, members=args.members, force=args.force, tta=args.tta)
        return

    if args.command == "baselines":
        from .experiments.baselines import BaselineSpec, baselines

        spec = BaselineSpec(
            knn_k=args.knn_k, knn_pca=args.knn_pca, rf_trees=args.rf_trees, rf_depth=args.rf_depth,
            repeats=args.repeats, seed=args.seed, split_seed=args.split_seed, max_train=args.max_train,
            n_jobs=args.jobs or -1,
        )  # fmt: skip
        baselines(spec, args.out, data=data, force=args.force, progress=not args.no_progress)
        return

    from .training import TrainConfig

    fit = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, patience=args.patience, augment=args.augment,
        augment_shift=args.augment_shift, augment_rotation=args.augment_rotation, augment_zoom=args.augment_zoom,
        lr_schedule=args.lr_schedule, learning_rate=args.learning_rate, input_pipeline=args.input_pipeline,
        steps_per_execution=args.steps_per_execution, restore_best=not args.final_weights,
    )  # fmt: skip
    if args.command == "robustness":
        from .experiments.robustness import RobustnessSpec, robustness

        spec = RobustnessSpec(
            model=args.model, run=args.run, hparams_path=args.hparams, repeats=args.repeats,
            epsilons=args.epsilons, adversarial_training=not args.no_adversarial_training,
            train_epsilon=args.train_epsilon, examples=args.examples, seed=args.seed,
            split_seed=args.split_seed, max_train=args.max_train, train=fit,
        )  # fmt: skip
        out = args.out or f"results/robustness-{args.model or _run_name(args.run)}"
        robustness(spec, out, data=data, force=args.force, progress=not args.no_progress)
        return
    if args.command == "study":
        from .experiments.studies import StudySpec, study

        spec = StudySpec(
            name=args.name, repeats=args.repeats, configurations=configurations, seed=args.seed,
            split_seed=args.split_seed, max_train=args.max_train, train=fit,
        )  # fmt: skip
        study(
            spec, args.out or f"results/study-{args.name}", data=data, force=args.force, progress=not args.no_progress
        )
        return
    model, members = _model_and_members(args)
    common = {
        "model": model, "members": members, "seed": args.seed, "split_seed": args.split_seed,
        "max_train": args.max_train, "hparams_path": args.hparams, "train": fit,
    }  # fmt: skip
    label = "ensemble" if args.model == "ensemble" else model
    options = {"data": data, "force": args.force, "progress": not args.no_progress}
    if args.command == "evaluate":
        from .experiments.evaluation import EvaluationSpec, evaluate

        evaluate(EvaluationSpec(repeats=args.repeats, **common), args.out or f"results/evaluate-{label}", **options)
    elif args.command == "learning-curve":
        from .experiments.learning_curve import LearningCurveSpec, learning_curve

        spec = LearningCurveSpec(repeats=args.repeats, fractions=fractions, **common)
        learning_curve(spec, args.out or f"results/learning-curve-{label}", **options)
    else:
        from .pipeline import JobSpec, run_training

        default_out = "results/ensemble" if args.command == "ensemble" else f"results/{model}"
        spec = JobSpec(protocol=args.split, refit=args.refit, tta=args.tta, **common)
        run_training(spec, args.out or default_out, submission=args.submission, **options)


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--recipe flagship`` swaps in the flagship's defaults, which
    options given explicitly still override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "recipe", None) == "flagship":
        from .ensemble import FLAGSHIP

        args._commands[args.command].set_defaults(**FLAGSHIP)
        args = parser.parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lenet-tf``; returns the exit status."""
    # TensorFlow's C++ start-up chatter hides the package's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen in logs
    quiet_tensorflow_import()  # build_parser already needs the model registry, hence Keras
    args = parse_args(argv)
    from .data import one_line_warnings

    one_line_warnings()
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
