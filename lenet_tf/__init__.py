"""lenet_tf: LeNet networks for the Kaggle Digit Recognizer competition (TensorFlow / Keras 3).

The public API a notebook imports::

    from lenet_tf import JobSpec, TrainConfig, run_training, standard_lenet

    result = run_training(JobSpec(model="standard", train=TrainConfig(epochs=5)), "results/standard")
    result.ensemble, result.split, result.members, result.metrics, result.submission

Names are imported on first use (PEP 562), so ``import lenet_tf`` alone does not start TensorFlow
(the command line's ``--help`` and its data errors stay fast).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_MODELS = (
    "standard_lenet", "classic_lenet5", "optimized_lenet", "strided_standard_lenet", "strided_lenet", "lenet", "lenet5",
    "wide_lenet5", "wider_lenet5",
    "bn_lenet5", "deep_lenet5", "mlp", "mlp_dropout", "study_lenet", "LeNetHParams", "OPTIMIZED_HPARAMS", "BUILDERS",
    "get_builder", "load_hparams",
)  # fmt: skip
# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(_MODELS, "models"),
    **dict.fromkeys(("TrainConfig", "FitResult", "early_stopping", "train", "refit", "predict_proba"), "training"),
    **dict.fromkeys(("JobSpec", "TrainingResult", "run_training", "predict_run"), "pipeline"),
    **dict.fromkeys(("Ensemble", "FLAGSHIP", "train_members"), "ensemble"),
    **dict.fromkeys(("DigitData", "TestData", "Split", "load_data", "load_test_data", "split_data", "prepare"), "data"),
    "write_submission": "submission",
    "LenetError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # AttributeError lets `from lenet_tf import data` fall back to the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
