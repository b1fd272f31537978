"""Figures saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402

from .runs import atomic_write  # noqa: E402


def plot_convergence(histories: Sequence[dict[str, list[float]]], path: str | Path, title: str) -> Path:
    """Training and validation accuracy per epoch; several histories (ensemble members) overlaid."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, history in enumerate(histories):
        epochs = range(1, len(history["accuracy"]) + 1)
        label = index == 0
        ax.plot(epochs, history["accuracy"], color="tab:blue", alpha=0.7, label="train" if label else None)
        ax.plot(epochs, history["val_accuracy"], color="tab:orange", alpha=0.7, label="validation" if label else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    members = f" ({len(histories)} members overlaid)" if len(histories) > 1 else ""
    ax.set_title(title + members)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)
