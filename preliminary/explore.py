"""Preliminary data exploration: figures and a Markdown summary of the digits.

A thin script over :func:`lenet_tf.experiments.exploration.explore` (the same as ``lenet-tf explore``,
with the same options, declared once in :mod:`lenet_tf.options`)::

    python preliminary/explore.py --data digit-recognizer.zip --out results/explore \
        [--run results/ensemble]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from lenet_tf.options import DataOptions, ExploreOptions, ScriptParser, TestFileOptions


def build_parser() -> ScriptParser:
    """The script's command line: ``lenet-tf explore``'s options (bounds, defaults, rules and help)."""
    return ScriptParser(
        "explore", [(DataOptions, ()), (TestFileOptions, ()), (ExploreOptions, ())],
        prog="python preliminary/explore.py",
        description="Explore the digits: sample grid, label distribution and split check, pixel statistics,"
        " PCA, mean digits, and test predictions of a saved model.",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, explore the data, return the exit status (2 for a bad input)."""
    args = build_parser().parse_checked(argv)  # a bad value: one line, exit status 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter, only with --run

    from lenet_tf.data import load_data
    from lenet_tf.errors import LenetError
    from lenet_tf.experiments.exploration import explore

    try:
        digits = load_data(args.data, test=args.test)
        explore(digits, args.out, model_run=args.run, members=args.members, seed=args.seed)
    except LenetError as exc:
        print(f"explore: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
