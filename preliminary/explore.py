"""Preliminary data exploration: figures and a Markdown summary of the digits.

A thin script over :func:`lenet_tf.experiments.exploration.explore` (the same as ``lenet-tf explore``)::

    python preliminary/explore.py --data digit-recognizer.zip --out results/explore \
        [--model-run results/ensemble]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, explore the data, return the exit status (2 for a bad input)."""
    parser = argparse.ArgumentParser(
        description="Explore the digits: sample grid, label distribution and split check, pixel statistics,"
        " PCA, mean digits, and test predictions of a saved model."
    )
    parser.add_argument(
        "--data", help="directory, competition zip, train.csv or 'sample' (default: ./data/ or the sample)"
    )
    parser.add_argument("--test", help="test.csv to go with a train.csv given as --data")
    parser.add_argument("--out", default="results/explore", help="output directory (default results/explore)")
    parser.add_argument("--model-run", help="run directory whose saved model(s) predict a grid of test digits")
    parser.add_argument("--members", type=int, help="use only the first N members of --model-run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random samples (default 0)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter, only with --model-run

    from lenet_tf.data import load_data
    from lenet_tf.errors import LenetError
    from lenet_tf.experiments.exploration import explore

    try:
        digits = load_data(args.data, test=args.test)
        explore(digits, args.out, model_run=args.model_run, members=args.members, seed=args.seed)
    except LenetError as exc:
        print(f"explore: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
