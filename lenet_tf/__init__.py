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

# The models module's API besides its registered builders, which the registry adds under their
# function names (standard_lenet, …: lenet_tf.registry.builder_names, read without TensorFlow).
_MODELS = (
    "lenet", "lenet5", "study_lenet", "LeNetHParams", "OPTIMIZED_HPARAMS", "BUILDERS", "get_builder", "load_hparams",
)  # fmt: skip
# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(_MODELS, "models"),
    **dict.fromkeys(("register_model", "unregister_model"), "registry"),
    **dict.fromkeys(("TrainConfig", "FitResult", "early_stopping", "train", "refit", "predict_proba"), "training"),
    **dict.fromkeys(("JobSpec", "TrainingResult", "run_training", "predict_run"), "pipeline"),
    **dict.fromkeys(("Ensemble", "FLAGSHIP", "train_members"), "ensemble"),
    **dict.fromkeys(("DigitData", "TestData", "Split", "load_data", "load_test_data", "split_data", "prepare"), "data"),
    "write_submission": "submission",
    "LenetError": "errors",
}


def _builders() -> dict[str, str]:
    """The registered builders' function names → their models' names (now: a model registered later counts)."""
    from .registry import builder_names

    return builder_names()


def __getattr__(name: str) -> Any:
    if name == "__all__":  # computed when asked: the registered builders are exported too
        return sorted({*_EXPORTS, *_builders()})
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # imported once
        return value
    model = None if name.startswith("__") else _builders().get(name)
    if model is None:  # AttributeError lets `from lenet_tf import data` fall back to the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .registry import entries

    return entries()[model].builder  # not kept: a model unregistered later is gone from here too


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_builders()))
