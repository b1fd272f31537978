"""Kaggle submission files: ``ImageId,Label`` with ImageId 1…N, as ``sample_submission.csv``."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .data import N_CLASSES, DataWarning
from .errors import LenetError
from .rundir import write_text

HEADER = ["ImageId", "Label"]
KAGGLE_TEST_ROWS = 28_000


def submission_csv(labels: np.ndarray, *, expected_rows: int | None = None) -> str:
    """The submission text for predicted ``labels`` (validated: integers 0-9, the expected count)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise LenetError(f"submission: expected one label per image, got an array of shape {labels.shape}")
    if expected_rows is not None and len(labels) != expected_rows:
        raise LenetError(f"submission: {len(labels)} predictions, expected {expected_rows} (one per test image)")
    if len(labels) == 0:
        raise LenetError("submission: no predictions to write")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= N_CLASSES:
        raise LenetError("submission: labels must be integers 0-9")
    frame = pd.DataFrame({"ImageId": np.arange(1, len(labels) + 1), "Label": labels.astype(np.int64)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def write_submission(
    labels: np.ndarray, path: str | Path, *, expected_rows: int | None = None, force: bool = False
) -> Path:
    """Write a submission CSV atomically.

    An existing file is never silently replaced: rewriting identical content is a no-op,
    different content needs ``force``. A file of other than the competition's 28,000 rows
    (which Kaggle rejects) is written with a :class:`~lenet_tf.data.DataWarning`.
    """
    path = Path(path)
    text = submission_csv(labels, expected_rows=expected_rows)
    if len(labels) != KAGGLE_TEST_ROWS:
        warnings.warn(
            f"{path}: {len(labels):,} rows, not the competition's {KAGGLE_TEST_ROWS:,}: Kaggle will not accept it",
            DataWarning,
            stacklevel=2,
        )
    if path.exists():
        if path.is_dir():
            raise LenetError(f"{path}: is a directory, not a submission file")
        if path.read_text(encoding="utf-8", errors="replace") == text:
            return path
        if not force:
            raise LenetError(f"{path} already exists with other predictions; pass --force to overwrite it")
    return write_text(path, text)


def refuse_inputs(path: str | Path, inputs: Iterable[str | Path], *, what: str = "submission") -> None:
    """Refuse to write ``path`` when it is one of ``inputs`` (the files the command reads, by path,
    link or hard link), ``force`` or not: the data a run was trained on is never replaced by its output."""
    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            which = "" if str(source) == str(path) else f"that is {source}, "
            raise LenetError(
                f"{path}: {which}an input of this command; an input is never overwritten, --force or not:"
                f" write the {what} elsewhere"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # unreadable, or a symlink loop: neither can be an input read
        return False


def read_submission(path: str | Path, *, expected_rows: int | None = None) -> pd.DataFrame:
    """Read and validate a submission file (header, ImageId 1…N, labels 0-9)."""
    path = Path(path)
    if not path.is_file():
        raise LenetError(f"{path}: no such file")
    frame = pd.read_csv(path)
    if list(frame.columns) != HEADER:
        raise LenetError(f"{path}: line 1: header is {','.join(map(str, frame.columns))}, expected ImageId,Label")
    if expected_rows is not None and len(frame) != expected_rows:
        raise LenetError(f"{path}: {len(frame)} rows, expected {expected_rows}")
    if not np.array_equal(frame["ImageId"].to_numpy(), np.arange(1, len(frame) + 1)):
        raise LenetError(f"{path}: ImageId must run 1…{len(frame)} in order")
    labels = frame["Label"]
    if not pd.api.types.is_integer_dtype(labels) or labels.min() < 0 or labels.max() >= N_CLASSES:
        raise LenetError(f"{path}: Label must be an integer 0-9 on every row")
    return frame
