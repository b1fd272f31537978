"""End-to-end jobs behind the command line and the make targets.

:func:`run_training` loads the data, splits it, trains one model or an ensemble (resuming a run
of the same configuration), and writes the run directory::

    <out>/config.json        what the run is (a different configuration is refused)
    <out>/members/           member_XX.keras + member_XX.json, each saved as soon as it finishes
    <out>/refit/             with ``refit``: the members retrained on train + validation images
                             for their best epoch count (these write the submission)
    <out>/metrics.json       per-member and ensemble figures, timings, data, environment
    <out>/metrics.md         the same as Markdown tables
    <out>/convergence.png    train / validation accuracy per epoch (members overlaid)
    <out>/submission.csv     Kaggle submission for the test images (when the data has them)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from . import options
from .data import DigitData, Split, load_data, split_data, subsample
from .ensemble import Ensemble, refit_members, train_members
from .errors import LenetError
from .models import model_title, resolve_model
from .plots import plot_convergence
from .rundir import environment, markdown_table, open_run, write_json, write_text
from .submission import write_submission
from .training import FitResult, accuracy


@dataclass(frozen=True)
class JobSpec(options.JobOptions):
    """What to train: a registered model (``--hparams`` file for ``optimized``), how many members,
    on which split protocol, with which seeds and fit protocol (the fields: options.JobOptions)."""

    def validate(self) -> JobSpec:
        return options.validate(self)

    def extras(self) -> dict[str, Any]:
        """Options recorded in config.json only when used (older runs keep resuming). ``tta``
        changes the predictions only, not the members, so it is in metrics.json instead."""
        return {"refit": True} if self.refit else {}


@dataclass(frozen=True)
class JobInputs:
    """What every job starts from: the model's builder and description, the data, its split."""

    builder: Callable[[], keras.Model]
    model_info: dict[str, Any]
    data: DigitData
    split: Split
    max_train: int | None = None

    def config(self, **fields: Any) -> dict[str, Any]:
        """A run's configuration: what every job records about its model and data, plus ``fields``."""
        return {
            "model": self.model_info,
            "split_seed": self.split.seed,
            "split_sizes": self.split.sizes(),
            "max_train": self.max_train,
            "data_fingerprint": self.data.fingerprint(),
            **fields,
        }


def prepare_job(
    model: str,
    hparams_path: str | Path | None,
    *,
    protocol: str,
    split_seed: int,
    max_train: int | None,
    data: DigitData | None = None,
    source: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> JobInputs:
    """Resolve the model (before the data: a bad hyperparameter file fails fast), load the data
    (or take ``data``), subsample it to ``max_train`` rows, and split it by ``protocol``."""
    builder, model_info = resolve_model(model, hparams_path, echo=echo)
    if data is None:
        data = load_data(source)
    if max_train:
        data = subsample(data, max_train, seed=split_seed)
    if data.source.startswith("embedded"):
        echo(
            f"note: this is the small embedded demo sample; its {len(data.test_labels):,} held-out digits"
            " stand in for the competition test set. Pass --data (or DATA=) digit-recognizer.zip for the real job."
        )
    return JobInputs(builder, model_info, data, split_data(data, protocol, seed=split_seed), max_train)


def run_training(
    spec: JobSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    submission: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a training job into ``out`` and return its metrics (also written to metrics.json)."""
    out = Path(out)
    spec.validate()
    started = time.perf_counter()
    job = prepare_job(
        spec.model, spec.hparams_path, protocol=spec.protocol, split_seed=spec.split_seed,
        max_train=spec.max_train, data=data, source=source, echo=echo,
    )  # fmt: skip
    builder, data, split = job.builder, job.data, job.split
    echo(f"data: {data.source}")
    load_seconds = data.load_seconds + time.perf_counter() - started

    if isinstance(spec.tta, bool) or not isinstance(spec.tta, int) or spec.tta < 0:
        raise LenetError(f"--tta must be an integer ≥ 0, got {spec.tta!r}")
    config = job.config(members_seed=spec.seed, protocol=spec.protocol, train=spec.train.to_dict(), **spec.extras())
    resumed = open_run(out, config, force=force)
    if resumed:
        echo(f"resuming the run in {out}: finished members are loaded, not retrained")

    def report(index: int, result: FitResult, was_saved: bool) -> None:
        state = "loaded" if was_saved else f"trained in {result.seconds:.0f}s"
        echo(
            f"member {index + 1}/{spec.members}: {state}, val accuracy {result.val_accuracy:.4f}"
            f" ({'best' if spec.train.restore_best else 'last'} epoch {result.best_epoch} of {result.epochs_run})"
        )

    train_started = time.perf_counter()
    ensemble, results = train_members(
        builder,
        split,
        members=spec.members,
        directory=out,
        seed=spec.seed,
        config=spec.train,
        progress=progress,
        on_member=report,
    )
    train_seconds = time.perf_counter() - train_started

    predict_started = time.perf_counter()
    metrics = _evaluate(ensemble, split, data, tta=spec.tta)
    if spec.tta:  # what the augmented copies add, on the same members
        plain = _evaluate(ensemble, split, data, sets=("val", "test"))
        metrics["without_tta"] = plain["ensemble"] | {
            key: value for key, value in plain.items() if key.startswith("member_")
        }
    predict_seconds = time.perf_counter() - predict_started

    refit_seconds = 0.0
    refit_results: list[FitResult] = []
    if spec.refit:
        # Validation images join the training set; a labeled test part (evaluation protocol)
        # stays held out, which is how the refit's gain is measured.
        images = np.concatenate([split.x_train, split.x_val])
        labels = np.concatenate([split.y_train, split.y_val])
        epochs = [r.best_epoch for r in results]
        echo(f"refit: retraining {len(epochs)} member(s) on {len(images):,} images for {epochs} epochs")

        def report_refit(index: int, result: FitResult, was_saved: bool) -> None:
            state = "loaded" if was_saved else f"trained in {result.seconds:.0f}s"
            echo(f"refit member {index + 1}/{len(epochs)}: {state}, {result.epochs_run} epochs")

        refit_started = time.perf_counter()
        ensemble, refit_results = refit_members(
            builder, images, labels, epochs=epochs, directory=out, seed=spec.seed, config=spec.train,
            progress=progress, on_member=report_refit,
        )  # fmt: skip
        refit_seconds = time.perf_counter() - refit_started
        if split.y_test is not None:
            refit_figures = _evaluate(ensemble, split, data, tta=spec.tta, sets=("test",))
            metrics["refit"] = refit_figures["ensemble"] | {
                "member_test_accuracy": refit_figures["member_test_accuracy"]
            }

    test_started = time.perf_counter()
    test_labels = ensemble.predict(data.test_images, tta=spec.tta) if data.test_images is not None else None
    predict_seconds += time.perf_counter() - test_started

    submission_path = None
    if test_labels is not None:
        submission_path = Path(submission) if submission else out / "submission.csv"
        write_submission(test_labels, submission_path, expected_rows=len(data.test_images), force=force)
        echo(f"submission: {submission_path} ({len(test_labels)} rows)")
    else:
        echo("no test images in the data: no submission written")

    metrics.update(
        {
            "config": config,
            "data_source": data.source,
            "members": [
                {"member": i + 1, **{k: v for k, v in r.to_dict().items() if k not in ("history", "extra")}}
                for i, r in enumerate(results)
            ],
            "timing_seconds": {
                "load_and_split": round(load_seconds, 2),
                "train": round(train_seconds, 2),
                "train_members_sum": round(sum(r.seconds for r in results), 2),
                "refit": round(refit_seconds, 2),
                "predict": round(predict_seconds, 2),
                "total": round(data.load_seconds + time.perf_counter() - started, 2),
            },
            "refit_members": [
                {"member": i + 1, **{k: v for k, v in r.to_dict().items() if k not in ("history", "extra")}}
                for i, r in enumerate(refit_results)
            ],
            "tta": spec.tta,
            "resumed": resumed,
            "submission": None if submission_path is None else str(submission_path),
            "environment": environment(),
        }
    )
    write_json(out / "metrics.json", metrics)
    write_text(out / "metrics.md", metrics_markdown(metrics))
    plot_convergence([r.history for r in results], out / "convergence.png", title=model_title(spec.model))
    echo(f"validation accuracy: {metrics['ensemble']['val_accuracy']:.4f}  ({len(results)} member(s))")
    echo(f"results: {out}/metrics.json, metrics.md, convergence.png")
    return metrics


def _evaluate(
    ensemble: Ensemble,
    split: Split,
    data: DigitData,
    *,
    tta: int = 0,
    sets: tuple[str, ...] = ("val", "test", "heldout"),
) -> dict[str, Any]:
    """Validation (and any labeled test) accuracy of each member and of the averaged ensemble."""
    figures: dict[str, Any] = {"ensemble": {}}
    labeled_sets = {"val": (split.x_val, split.y_val)}
    if split.y_test is not None:
        labeled_sets["test"] = (split.x_test, split.y_test)
    if data.test_labels is not None:
        labeled_sets["heldout"] = (data.test_images, data.test_labels)
    for name, (images, labels) in labeled_sets.items():
        if name not in sets:
            continue
        per_member = ensemble.member_probabilities(images, tta=tta)
        figures[f"member_{name}_accuracy"] = [accuracy(p, labels) for p in per_member]
        figures["ensemble"][f"{name}_accuracy"] = accuracy(per_member.mean(axis=0), labels)
        # Accuracy of the first k members averaged, k = 1..K: what each added member buys.
        running = np.cumsum(per_member, axis=0)
        figures[f"first_k_{name}_accuracy"] = [accuracy(total, labels) for total in running]
    return figures


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """Markdown rendering of a run's metrics.json."""
    model = metrics["config"]["model"]["name"]
    rows = [
        [
            m["member"],
            m["seed"],
            m["train_accuracy"],
            m["val_accuracy"],
            m["best_epoch"],
            m["epochs_run"],
            f"{m['seconds']:.1f}",
        ]
        for m in metrics["members"]
    ]
    text = [f"# {model_title(model)}: {len(rows)} member(s)\n", f"Data: {metrics['data_source']}\n"]
    text.append(
        markdown_table(["member", "seed", "train acc (best epoch)", "val acc", "best epoch", "epochs", "seconds"], rows)
    )
    ensemble = metrics["ensemble"]
    summary = [[name.replace("_accuracy", ""), value] for name, value in ensemble.items()]
    text.append("\n## Averaged probabilities\n\n" + markdown_table(["set", "accuracy"], summary))
    if metrics.get("tta"):
        without = metrics.get("without_tta", {})
        plain = [f"{name.replace('_accuracy', '')} {value:.4f}" for name, value in without.items() if name in
                 ("val_accuracy", "test_accuracy")]  # fmt: skip
        text.append(
            f"\nTest-time augmentation: {metrics['tta']} augmented copies of each image averaged in"
            " (every set above and the submission)" + (f"; without them: {', '.join(plain)}.\n" if plain else ".\n")
        )
    first_k = metrics.get("first_k_val_accuracy", [])
    if len(first_k) > 1:
        rows = [[k + 1, f"{value:.4f}"] for k, value in enumerate(first_k)]
        text.append("\n## Members averaged (validation)\n\n" + markdown_table(["first k members", "val acc"], rows))
    val = np.asarray(metrics["member_val_accuracy"])
    if len(val) > 1:
        text.append(f"\nMember validation accuracy: {val.mean():.4f} ± {val.std(ddof=1):.4f} (mean ± std)\n")
    timing = metrics["timing_seconds"]
    text.append("\n## Timing (seconds)\n\n" + markdown_table(list(timing), [[f"{v:.1f}" for v in timing.values()]]))
    if metrics.get("refit_members"):
        epochs = ", ".join(str(m["epochs_run"]) for m in metrics["refit_members"])
        text.append(
            f"\nRefit: {len(metrics['refit_members'])} member(s) retrained on train + validation images"
            f" ({epochs} epochs); they wrote the submission.\n"
        )
        if metrics.get("refit"):
            refit = [
                [name.replace("_accuracy", ""), v]
                for name, v in metrics["refit"].items()
                if name.endswith("accuracy") and not name.startswith("member")
            ]
            text.append(
                "\n### Refit members on the held-out test part\n\n" + markdown_table(["set", "accuracy"], refit)
            )
    if metrics.get("submission"):
        text.append(f"\nSubmission: `{metrics['submission']}`\n")
    return "".join(text)


def predict_run(
    run: str | Path,
    output: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    members: int | None = None,
    force: bool = False,
    tta: int = 0,
    echo: Callable[[str], None] = print,
) -> Path:
    """Load a run directory's members, predict the test images and write a submission."""
    ensemble = Ensemble.load(run, limit=members)
    if data is None:
        data = load_data(source)
    if data.test_images is None:
        raise LenetError(f"{data.source}: no test images (test.csv) to predict")
    labels = ensemble.predict(data.test_images, tta=tta)
    path = write_submission(labels, output, expected_rows=len(data.test_images), force=force)
    echo(f"submission: {path} ({len(labels)} rows from {len(ensemble)} member(s))")
    if data.test_labels is not None:
        echo(f"held-out accuracy: {float(np.mean(labels == data.test_labels)):.4f}")
    return path
