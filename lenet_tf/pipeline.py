"""End-to-end jobs behind the command line and the make targets.

:func:`run_training` loads the data, splits it, trains one model or an ensemble (resuming a run
of the same configuration), writes the run directory and returns a :class:`TrainingResult`
(the members, the split, the metrics: the files are a view of it)::

    <out>/config.json        what the members are (a different configuration is refused)
    <out>/members/           member_XX.keras + member_XX.json, each saved as soon as it finishes
    <out>/refit/             with ``refit``: the members retrained on train + validation images
                             for their best epoch count (these write the submission); a refit
                             reuses the finished members, so it can be added to a finished run
    <out>/metrics.json       per-member and ensemble figures, timings, data, environment
    <out>/metrics.md         the same as Markdown tables
    <out>/convergence.png    train / validation accuracy per epoch (members overlaid)
    <out>/submission.csv     Kaggle submission for the test images (when the data has them)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from . import options
from .data import DigitData, Split, TestData, load_data, load_test_data, split_data, subsample
from .ensemble import MEMBERS_DIR, REFIT_DIR, Ensemble, member_paths, refit_members, train_members
from .errors import LenetError
from .holdout import holdout_key, recipe_key, record_scoring, spent_text
from .models import model_title, resolve_model
from .plots import plot_convergence
from .rundir import check_output, environment, markdown_table, open_run, read_json, write_json, write_text
from .stats import binomial_ci
from .submission import refuse_inputs, write_submission
from .training import FitResult, accuracy

# The held-out test part's rows (0-based, in the labeled data as loaded) and labels, per run.
HELDOUT_ROWS = "heldout_rows.csv"
REFIT_FIGURE = "refit_convergence.png"


@dataclass(frozen=True)
class JobSpec(options.JobOptions):
    """What to train: a registered model (``--hparams`` file for ``optimized``), how many members,
    on which split protocol, with which seeds and fit protocol (the fields: options.JobOptions)."""


@dataclass
class TrainingResult:
    """What :func:`run_training` made; the run directory's files are a view of it."""

    ensemble: Ensemble  # the members trained with validation (``members/``)
    split: Split
    data: DigitData
    members: list[FitResult]  # one per member of ``ensemble``
    metrics: dict[str, Any]  # what metrics.json holds
    out: Path
    submission: Path | None  # None when the data has no test images
    refit_ensemble: Ensemble | None = None  # with ``refit``: the members retrained on train + validation
    refit_members: list[FitResult] = field(default_factory=list)

    @property
    def predictor(self) -> Ensemble:
        """The ensemble that predicted the submission: the refit members after a refit."""
        return self.ensemble if self.refit_ensemble is None else self.refit_ensemble


@dataclass(frozen=True)
class JobInputs:
    """What every job starts from: the model's builder and description, the data, its split. A job
    that builds its own models (baselines, studies, levers, an attacked run) has no builder and no
    model record (:func:`prepare_split`)."""

    builder: Callable[[], keras.Model] | None
    model_info: dict[str, Any] | None
    data: DigitData
    split: Split
    max_train: int | None = None

    def config(self, **fields: Any) -> dict[str, Any]:
        """A run's configuration: what every job records about its model and data, plus ``fields``
        (an experiment's kind and :func:`~lenet_tf.options.run_record`, a ``model`` of its own). The
        split's own seed and size win over a spec's: a run attacked on another run's split records
        that split."""
        return {
            "model": self.model_info,
            **fields,
            "split_seed": self.split.seed,
            "split_sizes": self.split.sizes(),
            "max_train": self.max_train,
            "data_fingerprint": self.data.fingerprint(),
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
    input_scale: str | None = None,
    output_l2: bool = True,
    echo: Callable[[str], None] = print,
) -> JobInputs:
    """Resolve the model (before the data: a bad hyperparameter file fails fast), load the data
    (or take ``data``), subsample it to ``max_train`` rows, and split it by ``protocol``."""
    builder, model_info = resolve_model(model, hparams_path, input_scale=input_scale, output_l2=output_l2, echo=echo)
    job = prepare_split(protocol=protocol, split_seed=split_seed, max_train=max_train, data=data, source=source,
                        echo=echo)  # fmt: skip
    return replace(job, builder=builder, model_info=model_info)


def prepare_split(
    *,
    protocol: str,
    split_seed: int,
    max_train: int | None,
    data: DigitData | None = None,
    source: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> JobInputs:
    """The data and split of a job that builds its own models: :func:`prepare_job` without a model."""
    data, split = load_and_split(protocol=protocol, split_seed=split_seed, max_train=max_train, data=data,
                                 source=source, echo=echo)  # fmt: skip
    return JobInputs(None, None, data, split, max_train)


def open_experiment(
    spec: Any,
    *,
    data: DigitData | None,
    source: str | Path | None,
    echo: Callable[[str], None],
    model: bool = True,
) -> JobInputs:
    """The opening every experiment shares: ``spec`` checked; with ``model``, its model resolved
    (before the data: a bad hyperparameter file fails fast); the data loaded and split by the
    evaluation protocol (60/20/20: the experiments report on the held-out fifth); the split echoed."""
    spec.validate()
    where = {"protocol": "evaluation", "split_seed": spec.split_seed, "max_train": spec.max_train,
             "data": data, "source": source, "echo": echo}  # fmt: skip
    if model:
        scale = {"input_scale": getattr(spec, "input_scale", None), "output_l2": getattr(spec, "output_l2", True)}
        job = prepare_job(spec.model, spec.hparams_path, **scale, **where)
    else:
        job = prepare_split(**where)
    echo(f"data: {job.data.source}; split {job.split.sizes()}")
    return job


def load_and_split(
    *,
    protocol: str,
    split_seed: int,
    max_train: int | None,
    data: DigitData | None = None,
    source: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[DigitData, Split]:
    """Load the data (or take ``data``), subsample it to ``max_train`` rows, and split it by ``protocol``."""
    if data is None:
        data = load_data(source)
    _require_classes(data)  # every training command splits here: refused before any model trains
    if max_train:
        data = subsample(data, max_train, seed=split_seed)
    if data.source.startswith("embedded"):
        echo(
            f"note: this is the small embedded demo sample; its {len(data.test_labels):,} held-out digits"
            " stand in for the competition test set. Pass --data (or DATA=) digit-recognizer.zip for the real job."
        )
    return data, split_data(data, protocol, seed=split_seed)


def _require_classes(data: DigitData) -> None:
    """Refuse labeled rows of fewer than 2 digit classes: a model trained on one digit predicts it for
    every image, and its accuracy (1.0000) would be printed as a result while measuring nothing."""
    present = np.unique(data.train_labels)
    if len(present) < 2:
        which = f" (digit {present[0]} only)" if len(present) else "es"
        raise LenetError(
            f"{data.source}: its {len(data.train_labels):,} labeled rows hold {len(present)} digit class{which};"
            " training needs at least 2"
        )


@contextmanager
def _timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start


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
) -> TrainingResult:
    """Run a training job into ``out``: train (or load) the members, refit them with ``spec.refit``,
    evaluate, write the submission and the run's files, and return them as a :class:`TrainingResult`."""
    out = Path(out)
    spec.validate()
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    path = _submission_path(out, submission)
    check_output(out, directory=True)  # before the data is read: a bad path is not found after training
    check_output(path)
    job, config, resumed = _open_job(spec, out, data=data, source=source, submission=path, force=force, echo=echo)
    seconds["load_and_split"] = job.data.load_seconds + time.perf_counter() - started
    with _timed(seconds, "train"):
        ensemble, results = _train_stage(spec, job, out, progress=progress, echo=echo)
    with _timed(seconds, "predict"):
        metrics = _evaluate_run(ensemble, job, tta=spec.tta)
    result = TrainingResult(ensemble, job.split, job.data, results, metrics, out, None)
    if spec.refit:
        with _timed(seconds, "refit"):
            result.refit_ensemble, result.refit_members = _refit_stage(spec, job, results, out, progress, echo)
        with _timed(seconds, "predict"):
            metrics.update(_evaluate_refit(result.refit_ensemble, job, tta=spec.tta))
    if spec.protocol == "holdout" and job.split.test_rows is not None:
        metrics["holdout"] = _record_holdout(spec, job, config, out, echo)
    with _timed(seconds, "predict"):
        result.submission = _submit(result.predictor, job.data, spec.tta, out, path, force=force, echo=echo)
    seconds["total"] = job.data.load_seconds + time.perf_counter() - started
    _record(result, spec, config, resumed=resumed, seconds=seconds)
    echo(f"validation accuracy: {metrics['ensemble']['val_accuracy']:.4f}  ({len(results)} member(s))")
    for name, value in (metrics.get("refit") or metrics["ensemble"]).items():
        if name in ("test_accuracy", "heldout_accuracy"):  # digits no member trained on
            echo(f"{name.replace('_', ' ')} of the members that wrote the submission: {value:.4f}")
    echo(f"results: {out}/metrics.json, metrics.md, convergence.png")
    return result


def _open_job(
    spec: JobSpec,
    out: Path,
    *,
    data: DigitData | None,
    source: str | Path | None,
    submission: Path,
    force: bool,
    echo: Callable[[str], None],
) -> tuple[JobInputs, dict[str, Any], bool]:
    """Prepare the job's inputs (``spec`` already validated) and create or reopen the run directory:
    the inputs, the configuration recorded in config.json, whether the run resumes. A ``submission``
    path that is one of the data's files is refused here, before the run directory or any training."""
    job = prepare_job(
        spec.model, spec.hparams_path, protocol=spec.protocol, split_seed=spec.split_seed,
        max_train=spec.max_train, data=data, source=source, input_scale=spec.input_scale,
        output_l2=spec.output_l2, echo=echo,
    )  # fmt: skip
    refuse_inputs(submission, job.data.inputs)
    echo(f"data: {job.data.source}")
    refit_dir = out / REFIT_DIR
    stale_refit = not spec.refit and any(refit_dir.glob("member_*.keras"))
    if stale_refit and not force:
        # `predict --run` would use those members while this run's submission came from the others.
        raise LenetError(
            f"{out} holds members refit on train + validation images ({REFIT_DIR}/): pass --refit to reuse them,"
            " or --force to discard them"
        )
    config = job.config(members_seed=spec.seed, protocol=spec.protocol, train=spec.train.to_dict())
    resumed = open_run(out, config, force=force, complete=options.complete_run_record)
    if resumed:
        echo(f"resuming the run in {out}: finished members are loaded, not retrained")
        _check_member_count(out, spec.members)
    if stale_refit and refit_dir.is_dir():
        shutil.rmtree(refit_dir)
        echo(f"--force: removed the refit members in {refit_dir}")
    return job, config, resumed


def _check_member_count(out: Path, members: int) -> None:
    """A resumed run may grow (more members are trained) but not shrink: its metrics and submission
    would describe fewer members than ``predict --run`` then loads from disk."""
    on_disk = len(list((out / MEMBERS_DIR).glob("member_*.keras")))
    if on_disk > members:
        raise LenetError(
            f"{out} holds {on_disk} trained members; ask for at least {on_disk}, or use another --out"
            f" (predict --run {out} --members {members} predicts with the first {members})"
        )


def _train_stage(
    spec: JobSpec, job: JobInputs, out: Path, *, progress: bool, echo: Callable[[str], None]
) -> tuple[Ensemble, list[FitResult]]:
    """Train (or load) the members, reporting each one's training-log figures."""
    kept = "best" if spec.train.restore_best else "last"
    # The log's validation figure is the members' plain predictions; with TTA metrics.md shows both.
    plain = " (no TTA)" if spec.tta else ""

    def report(index: int, result: FitResult, was_saved: bool) -> None:
        state = "loaded" if was_saved else f"trained in {result.seconds:.0f}s"
        echo(
            f"member {index + 1}/{spec.members}: {state}, val accuracy{plain} {result.val_accuracy:.4f}"
            f" ({kept} epoch {result.best_epoch} of {result.epochs_run})"
        )

    return train_members(
        job.builder, job.split, members=spec.members, directory=out, seed=spec.seed, config=spec.train,
        progress=progress, on_member=report,
    )  # fmt: skip


def _refit_stage(
    spec: JobSpec,
    job: JobInputs,
    results: list[FitResult],
    out: Path,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[Ensemble, list[FitResult]]:
    """Retrain every member on train + validation images for its best epoch count; refit members
    already saved (an earlier, interrupted refit) are loaded."""
    split = job.split
    # Validation images join the training set; a labeled test part (evaluation protocol)
    # stays held out, which is how the refit's gain is measured.
    images = np.concatenate([split.x_train, split.x_val])
    labels = np.concatenate([split.y_train, split.y_val])
    epochs = [r.best_epoch for r in results]
    echo(f"refit: retraining {len(epochs)} member(s) on {len(images):,} images for {epochs} epochs")

    def report(index: int, result: FitResult, was_saved: bool) -> None:
        state = "loaded" if was_saved else f"trained in {result.seconds:.0f}s"
        echo(f"refit member {index + 1}/{len(epochs)}: {state}, {result.epochs_run} epochs")

    return refit_members(
        job.builder, images, labels, epochs=epochs, directory=out, seed=spec.seed, config=spec.train,
        progress=progress, on_member=report,
    )  # fmt: skip


def _labeled_sets(split: Split, data: DigitData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The labeled image sets a run is measured on: validation, a test part, the data's held-out digits."""
    sets = {"val": (split.x_val, split.y_val)}
    if split.y_test is not None:
        sets["test"] = (split.x_test, split.y_test)
    if data.test_labels is not None:
        sets["heldout"] = (data.test_images, data.test_labels)
    return sets


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
    for name, (images, labels) in _labeled_sets(split, data).items():
        if name not in sets:
            continue
        per_member = ensemble.member_probabilities(images, tta=tta)
        figures[f"member_{name}_accuracy"] = [accuracy(p, labels) for p in per_member]
        figures["ensemble"][f"{name}_accuracy"] = accuracy(per_member.mean(axis=0), labels)
        # Accuracy of the first k members averaged, k = 1..K: what each added member buys.
        running = np.cumsum(per_member, axis=0)
        figures[f"first_k_{name}_accuracy"] = [accuracy(total, labels) for total in running]
    return figures


def _record_holdout(
    spec: JobSpec, job: JobInputs, config: dict[str, Any], out: Path, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Record in the ledger that this recipe scored the held-out digits; say if others did before."""
    key = holdout_key(job.data.fingerprint(), job.split.seed, job.split.test_rows)
    before = record_scoring(spec.holdout_ledger, key, recipe_key(config), out)
    if before:
        echo(f"note: this hold-out was scored before for {len(before)} other recipe(s): the figure is not untouched")
    return {"key": key, "ledger": spec.holdout_ledger, "scored_before": before}


def _add_test_interval(figures: dict[str, Any], split: Split) -> None:
    """The held-out part's one figure gets its exact 95 % interval (``test_accuracy_ci95``)."""
    if "test_accuracy" in figures and split.y_test is not None:
        n = len(split.y_test)
        figures["test_accuracy_ci95"] = list(binomial_ci(round(figures["test_accuracy"] * n), n))


def _evaluate_run(ensemble: Ensemble, job: JobInputs, *, tta: int) -> dict[str, Any]:
    """The run's figures, each computed once from the predictions the run uses (with ``tta``
    augmented copies when asked); with TTA also the plain predictions' figures (``without_tta``)."""
    metrics = _evaluate(ensemble, job.split, job.data, tta=tta)
    _add_test_interval(metrics["ensemble"], job.split)
    if tta:  # what the augmented copies add, on the same members
        plain = _evaluate(ensemble, job.split, job.data, sets=("val", "test"))
        metrics["without_tta"] = plain["ensemble"] | {
            key: value for key, value in plain.items() if key.startswith("member_")
        }
    return metrics


def _evaluate_refit(ensemble: Ensemble, job: JobInputs, *, tta: int) -> dict[str, Any]:
    """The refit members on a labeled test part and on the data's held-out digits (never on the
    validation images: they trained on them)."""
    figures = _evaluate(ensemble, job.split, job.data, tta=tta, sets=("test", "heldout"))
    if not figures["ensemble"]:
        return {}
    members = {k: v for k, v in figures.items() if k.startswith("member_")}
    refit = figures["ensemble"] | members
    _add_test_interval(refit, job.split)  # the submission's recipe scored once
    return {"refit": refit}


def _submit(
    ensemble: Ensemble,
    data: DigitData,
    tta: int,
    out: Path,
    path: Path,
    *,
    force: bool,
    echo: Callable[[str], None],
) -> Path | None:
    """Predict the test images and write the submission to ``path`` (None without test images). A
    submission this run wrote before (its metrics.json names it) may be replaced, e.g. after a refit."""
    if data.test_images is None:
        echo("no test images in the data: no submission written")
        return None
    labels = ensemble.predict(data.test_images, tta=tta)
    before = path.read_bytes() if path.is_file() else None
    own = _run_wrote(out, path)
    write_submission(labels, path, expected_rows=len(data.test_images), force=force or own)
    replaced = before is not None and path.read_bytes() != before
    echo(f"submission: {path} ({len(labels)} rows" + (", replacing this run's earlier one)" if replaced else ")"))
    return path


def _submission_path(out: Path, submission: str | Path | None) -> Path:
    return Path(submission) if submission else out / "submission.csv"


def _run_wrote(out: Path, path: Path) -> bool:
    """Whether an earlier pass of the run in ``out`` wrote the submission ``path``."""
    recorded = out / "metrics.json"
    if not recorded.is_file():
        return False
    try:
        previous = read_json(recorded).get("submission")
    except (LenetError, AttributeError):  # unreadable or not an object: not evidence of anything
        return False
    return previous is not None and Path(previous).resolve() == path.resolve()


def _member_entries(results: list[FitResult], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """metrics.json's ``members``: each member's training record, with the validation accuracy
    of the predictions the run uses (the same number as ``member_val_accuracy``)."""
    entries = []
    for index, result in enumerate(results):
        entry = {"member": index + 1, **{k: v for k, v in result.to_dict().items() if k not in ("history", "extra")}}
        if entry.get("val_accuracy") is not None:
            entry["val_accuracy"] = metrics["member_val_accuracy"][index]
            if "without_tta" in metrics:
                entry["val_accuracy_without_tta"] = metrics["without_tta"]["member_val_accuracy"][index]
        entries.append(entry)
    return entries


def _record(
    result: TrainingResult, spec: JobSpec, config: dict[str, Any], *, resumed: bool, seconds: dict[str, float]
) -> None:
    """Complete ``result.metrics`` and write metrics.json, metrics.md and convergence.png."""
    metrics, members = result.metrics, result.members
    metrics.update(
        {
            "config": config,
            "data_source": result.data.source,
            "members": _member_entries(members, metrics),
            "timing_seconds": {
                "load_and_split": round(seconds["load_and_split"], 2),
                "train": round(seconds["train"], 2),
                "train_members_sum": round(sum(r.seconds for r in members), 2),
                "refit": round(seconds.get("refit", 0.0), 2),
                "predict": round(seconds["predict"], 2),
                "total": round(seconds["total"], 2),
            },
            "refit_members": [
                {"member": i + 1, **{k: v for k, v in r.to_dict().items() if k not in ("history", "extra")}}
                for i, r in enumerate(result.refit_members)
            ],
            "tta": spec.tta,
            "resumed": resumed,
            "submission": None if result.submission is None else str(result.submission),
            "environment": environment(),
        }
    )
    if result.split.test_rows is not None:  # which digits no choice saw, for whoever checks the figure
        rows = zip(result.split.test_rows.tolist(), result.split.y_test.tolist(), strict=True)
        write_text(result.out / HELDOUT_ROWS, "row,label\n" + "".join(f"{row},{label}\n" for row, label in rows))
    write_json(result.out / "metrics.json", metrics)
    write_text(result.out / "metrics.md", metrics_markdown(metrics))
    plot_convergence([r.history for r in members], result.out / "convergence.png", title=model_title(spec.model))
    if result.refit_members:  # the members that wrote the submission
        plot_convergence([r.history for r in result.refit_members], result.out / REFIT_FIGURE,
                         title=f"{model_title(spec.model)}, refit on every label")  # fmt: skip


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """Markdown rendering of a run's metrics.json."""
    model = metrics["config"]["model"]["name"]
    text = [f"# {model_title(model)}: {len(metrics['members'])} member(s)\n", f"Data: {metrics['data_source']}\n"]
    text.append(_members_markdown(metrics))
    text.append(_validation_note(metrics))
    ensemble = metrics["ensemble"]
    summary = [[name.replace("_accuracy", ""), value] for name, value in ensemble.items() if name.endswith("_accuracy")]
    text.append("\n## Averaged probabilities\n\n" + markdown_table(["set", "accuracy"], summary))
    if "test_accuracy_ci95" in ensemble:
        low, high = ensemble["test_accuracy_ci95"]
        text.append(
            f"\nHeld-out test part: {ensemble['test_accuracy']:.4f}, 95 % interval [{low:.4f}, {high:.4f}] (exact"
            f" binomial over its {metrics['config']['split_sizes']['test']:,} digits, which no choice of this run saw:"
            f" choose recipes on validation, not on these; their rows are in {HELDOUT_ROWS}).\n"
        )
    if "holdout" in metrics:
        text.append("\n" + spent_text(metrics["holdout"]["scored_before"], metrics["holdout"]["ledger"]) + "\n")
    if metrics.get("tta"):
        without = metrics.get("without_tta", {})
        plain = [f"{name.replace('_accuracy', '')} {value:.4f}" for name, value in without.items() if name in
                 ("val_accuracy", "test_accuracy")]  # fmt: skip
        text.append(
            f"\nTest-time augmentation: {metrics['tta']} augmented copies of each image averaged in"
            " (the val acc (TTA) column, every set above and the submission)"
            + (f"; without them: {', '.join(plain)}.\n" if plain else ".\n")
        )
    first_k = metrics.get("first_k_val_accuracy", [])
    if len(first_k) > 1:
        rows = [[k + 1, f"{value:.4f}"] for k, value in enumerate(first_k)]
        text.append("\n## Members averaged (validation)\n\n" + markdown_table(["first k members", "val acc"], rows))
    timing = metrics["timing_seconds"]
    text.append("\n## Timing (seconds)\n\n" + markdown_table(list(timing), [[f"{v:.1f}" for v in timing.values()]]))
    text.append(_refit_markdown(metrics))
    if metrics.get("submission"):
        text.append(f"\nSubmission: `{metrics['submission']}`\n")
    return "".join(text)


def _members_markdown(metrics: dict[str, Any]) -> str:
    """The member table and the members' mean ± std: the validation figures are
    ``member_val_accuracy`` (the predictions the run uses), the same numbers everywhere."""
    tta = bool(metrics.get("tta"))
    headers = ["member", "seed", "train acc (kept epoch)", "val acc" + (" (TTA)" if tta else "")]
    headers += ["val acc (no TTA)"] if tta else []
    rows = []
    for m in metrics["members"]:
        row = [m["member"], m["seed"], m["train_accuracy"], m["val_accuracy"]]
        row += [m["val_accuracy_without_tta"]] if tta else []
        rows.append([*row, m["best_epoch"], m["epochs_run"], f"{m['seconds']:.1f}"])
    text = markdown_table([*headers, "kept epoch", "epochs", "seconds"], rows)
    val = np.asarray([m["val_accuracy"] for m in metrics["members"]])
    if len(val) > 1:
        text += f"\nMember validation accuracy: {val.mean():.4f} ± {val.std(ddof=1):.4f} (mean ± std)\n"
    return text


def _validation_note(metrics: dict[str, Any]) -> str:
    """What the validation figures measure: neither kind is a clean held-out estimate."""
    train = metrics["config"].get("train", {})
    if train.get("restore_best", True):
        held_out = "test" if "test_accuracy" in metrics["ensemble"] else "held-out test part (--split evaluation)"
        return (
            "\nThe members keep their best validation epoch's weights, chosen on the validation images, so the"
            f" validation figures are optimistic; the {held_out} figure is not.\n"
        )
    return (
        f"\nThe members keep their last weights after all {train.get('epochs')} epochs (no early stopping), so the"
        " validation images chose neither weights nor epochs; a recipe chosen on them (as the flagship's was)"
        " still makes the validation figures somewhat optimistic.\n"
    )


def _refit_markdown(metrics: dict[str, Any]) -> str:
    if not metrics.get("refit_members"):
        return ""
    epochs = ", ".join(str(m["epochs_run"]) for m in metrics["refit_members"])
    text = (
        f"\nRefit: {len(metrics['refit_members'])} member(s) retrained on train + validation images"
        f" ({epochs} epochs); they wrote the submission.\n"
    )
    if metrics.get("refit"):
        refit = [
            [name.replace("_accuracy", ""), v]
            for name, v in metrics["refit"].items()
            if name.endswith("accuracy") and not name.startswith("member")
        ]
        text += "\n### Refit members on digits they never trained on\n\n" + markdown_table(["set", "accuracy"], refit)
        if "test_accuracy_ci95" in metrics["refit"]:
            low, high = metrics["refit"]["test_accuracy_ci95"]
            text += (f"\nHeld-out test part, refit members: {metrics['refit']['test_accuracy']:.4f}, 95 % interval"
                     f" [{low:.4f}, {high:.4f}] (exact binomial).\n")  # fmt: skip
    return text


def predict_run(
    run: str | Path,
    output: str | Path,
    *,
    data: DigitData | TestData | None = None,
    source: str | Path | None = None,
    test: str | Path | None = None,
    members: int | None = None,
    force: bool = False,
    tta: int = 0,
    echo: Callable[[str], None] = print,
) -> Path:
    """Load a run directory's members, predict the test images (``data``'s, else the ``test``
    file or ``source``'s, read without their training rows) and write a submission. Every member
    the run records must be there, and ``output`` must be none of the files read."""
    paths = member_paths(run, limit=members)  # a missing member is named before any data is read
    check_output(output)  # and so is an output that cannot be written
    if data is None:
        data = load_test_data(source, test=test)
    elif isinstance(data, DigitData):
        if data.test_images is None:
            raise LenetError(f"{data.source}: no test images (test.csv) to predict")
        data = TestData(data.test_images, data.test_labels, data.source, inputs=data.inputs)
    refuse_inputs(output, (*data.inputs, *paths))
    ensemble = Ensemble.load(run, limit=members)
    labels = ensemble.predict(data.images, tta=tta)
    path = write_submission(labels, output, expected_rows=len(data.images), force=force)
    echo(f"submission: {path} ({len(labels)} rows from {len(ensemble)} member(s))")
    if data.labels is not None:
        echo(f"held-out accuracy: {float(np.mean(labels == data.labels)):.4f}")
    return path
