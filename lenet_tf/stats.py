"""Summary statistics over repeated trainings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def binomial_ci(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of an accuracy of ``correct`` of ``total`` digits: what one
    held-out figure may be, from the digits alone (no repeats needed)."""
    interval = stats.binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def summarize(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1) and a Student-t confidence interval of the mean.

    With one value the spread is undefined: std and the interval half-width are reported as 0.
    Works elementwise along axis 0 for arrays of per-class figures.
    """
    array = np.asarray(values, dtype=float)
    n = array.shape[0]
    mean = array.mean(axis=0)
    if n > 1:
        std = array.std(axis=0, ddof=1)
        half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * std / np.sqrt(n)
    else:
        std = np.zeros_like(mean)
        half = np.zeros_like(mean)
    return {
        "n": int(n),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "ci_low": (mean - half).tolist(),
        "ci_high": (mean + half).tolist(),
        "confidence": confidence,
    }


def pm(summary: dict[str, Any], digits: int = 3) -> str:
    """``mean ± std`` text of a scalar summary; the mean alone when it rests on one value
    (a spread of one run is undefined, and "± 0" would claim it was measured)."""
    if summary.get("n", 2) < 2:
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def pm_at(summary: dict[str, Any], index: int, digits: int = 4) -> str:
    """:func:`pm` of entry ``index`` of a per-class summary (ROC AUC per digit)."""
    return pm({"n": summary.get("n", 2), "mean": summary["mean"][index], "std": summary["std"][index]}, digits)


def ci_text(summary: dict[str, Any], digits: int = 4, *, bounds: tuple[float, float] = (0.0, 1.0)) -> str:
    """``[low, high]`` text of a scalar summary's confidence interval, clipped to ``bounds`` (an
    accuracy's [0, 1]: a t interval over few repeats can reach past them); ``n/a`` for one value."""
    if summary.get("n", 2) < 2:
        return "n/a"
    low, high = max(summary["ci_low"], bounds[0]), min(summary["ci_high"], bounds[1])
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def auc_digits(members: int) -> int:
    """Decimals of a ROC AUC, as the reference reports them: 4 for a single model, 5 for an ensemble."""
    return 5 if members > 1 else 4


def ci_at(summary: dict[str, Any], index: int, digits: int = 4) -> str:
    """:func:`ci_text` of entry ``index`` of a per-class summary (clipped to [0, 1] likewise)."""
    entry = {"n": summary.get("n", 2), "ci_low": summary["ci_low"][index], "ci_high": summary["ci_high"][index]}
    return ci_text(entry, digits)
