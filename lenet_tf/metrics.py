"""Held-out figures of any classifier's class probabilities (Keras models, scikit-learn baselines).

NumPy and scikit-learn only: a scikit-learn baseline is scored without starting TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

from .data import N_CLASSES


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows of (N, 10) class probabilities whose most probable digit is the label."""
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))


def heldout_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Held-out figures of (N, 10) class probabilities: accuracy, per-class one-vs-rest ROC AUC,
    row-normalised confusion matrix and classification report."""
    predictions = np.argmax(probabilities, axis=1)
    classes = list(range(N_CLASSES))
    return {
        "test_accuracy": accuracy(probabilities, labels),
        "roc_auc": roc_auc_score(labels, probabilities, multi_class="ovr", average=None).tolist(),
        "confusion": confusion_matrix(labels, predictions, labels=classes, normalize="true").tolist(),
        "report": classification_report(labels, predictions, labels=classes, output_dict=True, zero_division=0),
    }
