"""Hyperparameter search with keras-tuner over the study's 12-hyperparameter LeNet space.

The search space is exactly :data:`lenet_tf.models.SEARCH_SPACE`; every trial builds
:func:`lenet_tf.models.lenet` and trains it with the package's protocol
(:func:`lenet_tf.training.fit`: batch 32, ≤ 100 epochs, early stopping on validation accuracy with
patience 5) on the train part of the evaluation split, and is scored by its best validation
accuracy. Bayesian optimization by default (200 trials); Hyperband and random search on request.
Every trial starts from the same seed, so trials differ by their hyperparameters only.

A search is resumable: keras-tuner keeps its state in ``<out>/search`` and a rerun continues it
(an interrupted trial is run again); ``overwrite=True`` starts afresh, deleting what the earlier
search wrote there and nothing else. Rerunning with a larger ``max_trials`` extends a finished search.

Distributed: keras-tuner's chief/worker mode, driven by ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (set them before keras-tuner is imported;
``lenet-tf tune --role`` does). The chief holds the oracle and writes the results; workers ask it
for trials, train them and report back, so only the chief's directory holds the outputs::

    <out>/config.json              what the search is (a different search there is refused)
    <out>/search/                  keras-tuner's project: oracle.json, trial_*/trial.json, checkpoints
    <out>/best_hparams.json        the best completed trial (models.load_hparams reads it)
    <out>/trials.csv               one row per trial: id, status, objective, epochs, seconds, tuner, hyperparameters
    <out>/trial_epochs.csv         accuracy and loss per epoch of every trial
    <out>/optimization_history.png, intermediate_values.png, hparam_importance.png
    <out>/summary.md
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np
import pandas as pd

from .. import models, options
from ..data import DigitData, prepare
from ..errors import LenetError
from ..pipeline import load_and_split
from ..plots import plot_hparam_importance, plot_intermediate_values, plot_optimization_history
from ..rundir import (
    CONFIG_FILE,
    atomic_write,
    clear_run,
    environment,
    markdown_table,
    open_run,
    record_written,
    write_json,
    write_text,
)
from ..seeds import check_seed, tuner_seed
from ..training import TrainConfig, fit, set_seed
from .runner import ExperimentResult

TUNERS = ("bayesian", "hyperband", "random")
DEFAULT_TRIALS = 200
# Epoch cap per trial. Hyperband's is its max_epochs: 10 makes the cheap CPU search (see
# hyperband_budget: 30 trials, at most 120 epochs in all).
DEFAULT_EPOCHS = {"bayesian": 100, "random": 100, "hyperband": 10}
HYPERBAND_FACTOR = 3
OBJECTIVE = "val_accuracy"
PROJECT = "search"  # keras-tuner's project directory inside the results directory

# keras-tuner's distributed mode reads these (its docs: "Distributed Tuning").
TUNER_ID_ENV = "KERASTUNER_TUNER_ID"
ORACLE_IP_ENV = "KERASTUNER_ORACLE_IP"
ORACLE_PORT_ENV = "KERASTUNER_ORACLE_PORT"

BEST_FILE = "best_hparams.json"
TRIALS_FILE = "trials.csv"
EPOCHS_FILE = "trial_epochs.csv"
SUMMARY_FILE = "summary.md"
PLOTS = ("optimization_history.png", "intermediate_values.png", "hparam_importance.png")
OUTPUTS = (BEST_FILE, TRIALS_FILE, EPOCHS_FILE, SUMMARY_FILE, *PLOTS)
MIN_TRIALS_FOR_IMPORTANCE = 3
FOREST_TREES = 100
PERMUTATION_REPEATS = 10
CHIEF_POLL_SECONDS = 0.5

# Hyperband's bookkeeping values in a trial's hyperparameters → trials.csv columns.
HYPERBAND_COLUMNS = {
    "tuner/epochs": "epoch_budget",
    "tuner/initial_epoch": "initial_epoch",
    "tuner/trial_id": "continues_trial",
    "tuner/bracket": "bracket",
    "tuner/round": "round",
}


@dataclass(frozen=True)
class TuneSpec(options.TuneOptions):
    """What to search: the tuner, its budget, the fit protocol of every trial, seeds, data subset.

    ``max_trials`` and ``epochs`` left None take the tuner's defaults (200 trials; 100 epochs,
    or 10 for Hyperband, whose number of trials follows from its epochs).
    """

    def validate(self) -> TuneSpec:
        options.validate(self)  # the tuner's choices, the budgets' bounds, no trial count for Hyperband
        self.train_config().validate()
        return self

    @property
    def trials(self) -> int | None:
        """The trial budget: ``max_trials`` or the default; None for Hyperband."""
        if self.tuner == "hyperband":
            return None
        return DEFAULT_TRIALS if self.max_trials is None else self.max_trials

    def train_config(self) -> TrainConfig:
        epochs = DEFAULT_EPOCHS.get(self.tuner, 100) if self.epochs is None else self.epochs
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, patience=self.patience)


def hyperband_budget(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> tuple[int, int]:
    """Trials and epochs (in all, an upper bound: early stopping ends trials sooner) of one
    Hyperband iteration with keras-tuner's bracket schedule (its own formulas)."""
    oracle = keras_tuner.oracles.HyperbandOracle(objective=_objective(), max_epochs=max_epochs, factor=factor)
    trials = epochs = 0
    for bracket in range(oracle._get_num_brackets()):
        for round_num in range(bracket + 1):
            size = oracle._get_size(bracket, round_num)
            previous = oracle._get_epochs(bracket, round_num - 1) if round_num else 0
            trials += size
            epochs += size * (oracle._get_epochs(bracket, round_num) - previous)
    return trials, epochs


def _objective() -> keras_tuner.Objective:
    return keras_tuner.Objective(OBJECTIVE, direction="max")


# ----------------------------------------------------------------------------- hypermodel


def declare(hp: keras_tuner.HyperParameters, name: str, domain: Mapping[str, Any]) -> Any:
    """Declare one :data:`~lenet_tf.models.SEARCH_SPACE` entry on ``hp`` and return its value."""
    if "values" in domain:
        return hp.Choice(name, list(domain["values"]))
    return hp.Float(name, domain["min"], domain["max"], sampling="log" if domain.get("log") else "linear")


def search_space() -> keras_tuner.HyperParameters:
    """keras-tuner's hyperparameters for :data:`~lenet_tf.models.SEARCH_SPACE`."""
    hp = keras_tuner.HyperParameters()
    for name, domain in models.SEARCH_SPACE.items():
        declare(hp, name, domain)
    return hp


class LeNetHyperModel(keras_tuner.HyperModel):
    """:func:`lenet_tf.models.lenet` over :data:`~lenet_tf.models.SEARCH_SPACE`, fitted with the
    package's protocol. ``fit`` returns the trial's metrics: best ``val_accuracy``, training
    ``accuracy`` at that epoch, ``best_epoch``, ``epochs`` trained and ``seconds``."""

    def __init__(self, train: TrainConfig = TrainConfig(), *, seed: int = 0, progress: bool = False) -> None:
        super().__init__(name="lenet")
        self.train = train.validate()
        self.seed = int(seed)
        self.progress = progress

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = {name: declare(hp, name, domain) for name, domain in models.SEARCH_SPACE.items()}
        set_seed(self.seed)  # same initial-weight seed for every trial
        return models.lenet(values)

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        validation_data: tuple[np.ndarray, np.ndarray],
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: list[keras.callbacks.Callback] | None = None,
        **unused: Any,
    ) -> dict[str, float]:
        unused.pop("verbose", None)  # keras-tuner passes search()'s verbose on; progress is ours
        if unused:
            raise TypeError(f"LeNetHyperModel.fit: unexpected arguments {sorted(unused)}")
        config = replace(self.train, epochs=int(epochs or self.train.epochs))
        result = fit(
            model, x, y, *validation_data, config=config, seed=self.seed, progress=self.progress,
            callbacks=list(callbacks or []), initial_epoch=int(initial_epoch),
        )  # fmt: skip
        return {
            OBJECTIVE: result.val_accuracy,
            "accuracy": result.train_accuracy,
            "best_epoch": float(result.best_epoch),
            "epochs": float(result.epochs_run - initial_epoch),
            "seconds": result.seconds,
        }


# ----------------------------------------------------------------------------- oracles and tuners


class _RecordsTuners:
    """Oracle mixin: remembers which tuner (worker) each trial was handed to, in oracle.json, so
    the chief's trials table names the worker of every trial."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tuner_of: dict[str, str] = {}
        self.deadline: float | None = None  # time.time() after which no trial starts (--time-budget)
        self.stopped_by_deadline = False

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.deadline is not None and time.time() >= self.deadline:
            # A STOPPED answer ends the search loop of whichever tuner asked; finished trials stay.
            self.stopped_by_deadline = True
            return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str) -> Any:
        trial = super().create_trial(tuner_id)
        if trial.status == "RUNNING" and self.tuner_of.get(trial.trial_id) != tuner_id:
            self.tuner_of[trial.trial_id] = tuner_id
            self.save()
        return trial

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "lenet_tuner_of": dict(self.tuner_of)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.tuner_of = dict(state.get("lenet_tuner_of", {}))


class _BayesianOracle(_RecordsTuners, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _HyperbandOracle(_RecordsTuners, keras_tuner.oracles.HyperbandOracle):
    pass


class _RandomOracle(_RecordsTuners, keras_tuner.oracles.RandomSearchOracle):
    pass


class _ReportsEpochs:
    """Tuner mixin: reports every epoch's metrics of a trial to the oracle (the chief's, in a
    distributed search), so the oracle holds each trial's learning curve in ``trial.metrics``,
    with the trial's epochs and seconds on its last epoch. keras-tuner 1.4 itself reports only
    the best epoch."""

    echo: Callable[[str], None] = print
    trials_run = 0

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_logs.append((int(epoch), {name: float(value) for name, value in (logs or {}).items()}))

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        self._epoch_logs: list[tuple[int, dict[str, float]]] = []
        results = super().run_trial(trial, *args, **kwargs)
        summary = results[-1]  # one execution per trial
        for index, (epoch, logs) in enumerate(self._epoch_logs):
            metrics = dict(logs)
            if index == len(self._epoch_logs) - 1:
                metrics.update({key: summary[key] for key in ("epochs", "seconds", "best_epoch")})
            self.oracle.update_trial(trial.trial_id, metrics, step=epoch)
        self.trials_run += 1
        self.echo(
            f"{self.tuner_id}: trial {trial_number(trial.trial_id)}: {OBJECTIVE} {summary[OBJECTIVE]:.4f} (best epoch"
            f" {summary['best_epoch']:.0f}, {summary['epochs']:.0f} epochs, {summary['seconds']:.0f}s)"
        )
        return results

    def on_trial_end(self, trial: Any) -> None:
        if trial.status != "COMPLETED":  # keras-tuner says nothing about a failed trial by default
            self.echo(f"{self.tuner_id}: trial {trial_number(trial.trial_id)} failed: {_last_line(trial.message)}")
        super().on_trial_end(trial)


def trial_number(trial_id: str) -> int:
    """The trial's number as every output gives it: 1 for the first trial started (keras-tuner's
    ids count from 0 in start order: trial 1 lives in ``search/trial_0``)."""
    return int(trial_id) + 1


class _Tuner(_ReportsEpochs, keras_tuner.Tuner):
    pass


class _HyperbandTuner(_ReportsEpochs, keras_tuner.Hyperband):
    def __init__(self, oracle: Any, **kwargs: Any) -> None:
        # Hyperband.__init__ only builds its own oracle; ours also records the tuners.
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)


def build_tuner(
    spec: TuneSpec, directory: str | Path, *, overwrite: bool = False, progress: bool = False
) -> keras_tuner.Tuner:
    """The keras-tuner tuner of ``spec`` with its project in ``directory/search``."""
    spec.validate()
    train = spec.train_config()
    common = {
        "objective": _objective(),
        # keras-tuner draws a random seed for a seed of 0: tuner_seed is never 0.
        "seed": tuner_seed(spec.seed),
        "max_consecutive_failed_trials": spec.max_consecutive_failed_trials,
    }
    if spec.tuner == "hyperband":
        oracle = _HyperbandOracle(max_epochs=train.epochs, factor=HYPERBAND_FACTOR, **common)
        tuner_class: type = _HyperbandTuner
    else:
        oracle_class = _BayesianOracle if spec.tuner == "bayesian" else _RandomOracle
        oracle = oracle_class(max_trials=spec.trials, **common)
        tuner_class = _Tuner
    tuner = tuner_class(
        oracle=oracle,
        hypermodel=LeNetHyperModel(train, seed=spec.seed, progress=progress),
        directory=str(directory),
        project_name=PROJECT,
        overwrite=overwrite,
    )
    if distributed_role() != "worker":
        tuner.oracle.verbose = 1 if progress else 0  # keras-tuner's per-trial tables
    return tuner


def distributed_role() -> str:
    """``"single"``, ``"chief"`` or ``"worker"``, by keras-tuner's rule: distributed when
    KERASTUNER_ORACLE_IP is set, the chief being the tuner whose id contains ``chief``."""
    if ORACLE_IP_ENV not in os.environ:
        return "single"
    for name in (ORACLE_PORT_ENV, TUNER_ID_ENV):
        if not os.environ.get(name):
            raise LenetError(f"{ORACLE_IP_ENV} is set but {name} is not: set all three, or none for one machine")
    return "chief" if "chief" in os.environ[TUNER_ID_ENV] else "worker"


def _oracle_address() -> str:
    return f"{os.environ[ORACLE_IP_ENV]}:{os.environ[ORACLE_PORT_ENV]}"


# ----------------------------------------------------------------------------- running a search


def tune(
    spec: TuneSpec,
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> ExperimentResult:
    """Run (or resume, or take part in) a search into ``out`` and return its result.

    A single machine or the chief writes the outputs; its result's report is the search's summary
    (best_hparams.json); a worker's is ``{"role": "worker", "trials_run": n}``. Raises LenetError when no trial
    completed (keras-tuner would otherwise call a failed trial the best).
    """
    spec.validate()
    check_seed(spec.seed)
    out = Path(out)
    role = distributed_role()
    if role == "worker" and overwrite:
        raise LenetError("--overwrite applies to the chief (or a single-machine search), not to a worker")
    started = time.perf_counter()
    split, config = _search_inputs(spec, data, source)
    resumed = _open_search(out, config, overwrite=overwrite, role=role)
    train = spec.train_config()
    echo(f"data: {config['data_source']}; evaluation split: {len(split.y_train):,} train / {len(split.y_val):,}"
         " validation")  # fmt: skip
    if spec.tuner == "hyperband":
        trials, epochs = hyperband_budget(train.epochs)
        echo(f"hyperband: {trials} trials, ≤ {train.epochs} epochs each, ≤ {epochs} epochs in all")
    else:
        echo(f"{spec.tuner}: {spec.trials} trials, ≤ {train.epochs} epochs each (early stopping with patience"
             f" {train.patience})")  # fmt: skip

    with warnings.catch_warnings():
        # Reporting per-epoch metrics (see _ReportsEpochs) takes a path keras-tuner calls deprecated.
        warnings.filterwarnings("ignore", message="The use case of calling", category=DeprecationWarning)
        # Hyperband continues a trial from its predecessor's weights; their optimizer state is not needed.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer", category=UserWarning)
        tuner = build_tuner(spec, out, overwrite=overwrite and role != "worker", progress=progress)
        tuner.echo = echo
        if spec.time_budget is not None and role != "worker":
            tuner.oracle.deadline = time.time() + 60 * spec.time_budget
            echo(f"time budget: no new trial starts after {spec.time_budget:g} minute(s)")
        if role == "worker":
            return ExperimentResult(out, config, [], _work(tuner, split, echo), {}, resumed)
        if resumed and tuner.oracle.trials:
            echo(f"resuming the search in {out}: {len(tuner.oracle.trials)} trial(s) already started")
        stopped = _serve(tuner, echo) if role == "chief" else _search(tuner, split, train.epochs)
    if stopped is None and tuner.oracle.stopped_by_deadline:
        stopped = f"the time budget of {spec.time_budget:g} minute(s) ran out."
        resumable = True
    else:
        resumable = False
    summary = write_results(
        tuner.oracle, spec, out, config, data_source=config["data_source"], stopped=stopped, resumable=resumable,
        seconds=time.perf_counter() - started, echo=echo,
    )  # fmt: skip
    written = (out / TRIALS_FILE, out / EPOCHS_FILE, out / BEST_FILE, out / SUMMARY_FILE, *sorted(out.glob("*.png")))
    return ExperimentResult(out, config, [], summary, {p.name: p for p in written}, resumed)


def _search_inputs(spec: TuneSpec, data: DigitData | None, source: str | Path | None) -> tuple[Any, dict[str, Any]]:
    """The evaluation split the search trains on, and the search's recorded configuration."""
    data, split = load_and_split(protocol="evaluation", split_seed=spec.split_seed, max_train=spec.max_train,
                                 data=data, source=source, echo=lambda _: None)  # fmt: skip
    config = {
        "kind": "tune",
        "tuner": spec.tuner,
        "objective": f"{OBJECTIVE} (max)",
        "search_space": models.SEARCH_SPACE,
        # The reference's search saw raw 0-255 pixels, its output layer carrying the dense L2: so does
        # this one (models.lenet's defaults), so its L2 strengths and rate mean what the reference's mean.
        "model": {"input_scale": models.REFERENCE_SCALE, "output_l2": True},
        "train": spec.train_config().to_dict(),
        "hyperband_factor": HYPERBAND_FACTOR if spec.tuner == "hyperband" else None,
        "seed": spec.seed,
        "split_seed": spec.split_seed,
        "split_sizes": {"train": len(split.y_train), "val": len(split.y_val)},
        "max_train": spec.max_train,
        "data_fingerprint": data.fingerprint(),
    }
    return split, config | {"data_source": data.source}


def _open_search(out: Path, config: dict[str, Any], *, overwrite: bool, role: str) -> bool:
    """Open (or resume) the search's run directory: ``overwrite`` deletes what an earlier search
    wrote there (its outputs and keras-tuner's project), and nothing else."""
    recorded = {k: v for k, v in config.items() if k != "data_source"}
    try:
        if overwrite and (out / CONFIG_FILE).is_file():
            clear_run(out)  # afresh even when the configuration is the same
        resumed = open_run(out, recorded, force=overwrite, complete=options.complete_run_record)
    except LenetError as exc:
        if role != "worker":
            raise
        raise LenetError(f"{exc} (a worker needs the chief's options; --force is the chief's)") from None
    record_written(out / PROJECT)  # keras-tuner writes it, not lenet_tf.rundir: listed for --overwrite
    return resumed


def _search(tuner: keras_tuner.Tuner, split: Any, epochs: int) -> str | None:
    """Run the search on this machine; why it stopped early (None: it did not)."""
    try:
        tuner.search(
            prepare(split.x_train), split.y_train,
            validation_data=(prepare(split.x_val), split.y_val), epochs=epochs,
        )  # fmt: skip
    except RuntimeError as exc:  # keras-tuner's stop after too many consecutive failures
        if "consecutive failures" not in str(exc):
            raise
        return str(exc).splitlines()[0]
    return None


def _work(tuner: keras_tuner.Tuner, split: Any, echo: Callable[[str], None]) -> dict[str, Any]:
    """Run trials for the chief until it has none left."""
    import grpc

    address = _oracle_address()
    echo(f"worker {tuner.tuner_id}: asking the chief at {address} for trials (waits for it to start)")
    try:
        tuner.search(
            prepare(split.x_train), split.y_train,
            validation_data=(prepare(split.x_val), split.y_val), epochs=tuner.hypermodel.train.epochs,
        )  # fmt: skip
    except grpc.RpcError as exc:
        detail = (exc.details() if hasattr(exc, "details") else str(exc)) or "no detail"
        raise LenetError(f"the chief at {address} failed or went away: {detail.splitlines()[0]}") from None
    echo(f"worker {tuner.tuner_id}: ran {tuner.trials_run} trial(s); the chief writes the results")
    return {"role": "worker", "tuner_id": tuner.tuner_id, "trials_run": tuner.trials_run}


def _serve(tuner: keras_tuner.Tuner, echo: Callable[[str], None]) -> str | None:
    """Serve the oracle to the workers until every trial has ended.

    keras-tuner's chief loop (``oracle_chief.start_server``), except that it checks every half
    second instead of every 20 s once stopping, reports a busy address, and gives up (returning
    why) when trials keep failing instead of waiting for ever.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    oracle = tuner.oracle
    tuner.save()
    if _finished(oracle):
        echo(f"the search in {tuner.project_dir} has no trials left; writing its results")
        return None
    address = _oracle_address()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise LenetError(f"--oracle-ip/--oracle-port: cannot listen on {address} (port in use, or not an address here)")
    server.start()
    echo(f"chief: serving the search on {address}; start workers with --role worker --oracle-ip … --oracle-port …")
    try:
        while True:
            time.sleep(CHIEF_POLL_SECONDS)
            # Not under the oracle's lock: keras-tuner leaves it held when a failure limit is hit.
            if _failure_limit_reached(oracle):
                return f"Number of consecutive failures exceeded the limit of {oracle.max_consecutive_failed_trials}."
            if servicer.stop_triggered and not oracle.ongoing_trials and not oracle.tuner_ids:
                return None
    finally:
        server.stop(grace=2)


def _finished(oracle: Any) -> bool:
    """True when a (resumed) search has nothing left to run: its trial budget is spent and no
    trial waits to be run again."""
    pending = oracle.ongoing_trials or getattr(oracle, "_retry_queue", None)
    return bool(oracle.max_trials) and len(oracle.trials) >= oracle.max_trials and not pending


def _failure_limit_reached(oracle: Any) -> bool:
    streak = 0
    for trial_id in list(oracle.end_order):
        streak = streak + 1 if oracle.trials[trial_id].status == "FAILED" else 0
        if streak >= oracle.max_consecutive_failed_trials:
            return True
    return False


# ----------------------------------------------------------------------------- results


def trials_table(oracle: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every trial in start order (one row each) and every trial's per-epoch metrics."""
    rows, epoch_rows = [], []
    tuner_of = getattr(oracle, "tuner_of", {})
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        metrics = trial.metrics

        def last(name: str, metrics: Any = metrics) -> float | None:
            return metrics.get_last_value(name) if metrics.exists(name) else None

        completed = trial.status == "COMPLETED"
        row: dict[str, Any] = {
            "trial": trial_number(trial_id),
            "trial_id": trial_id,
            "status": trial.status,
            OBJECTIVE: float(trial.score) if completed and trial.score is not None else None,
            "best_epoch": last("best_epoch"),
            "epochs": last("epochs"),
            "seconds": None if last("seconds") is None else round(last("seconds"), 2),
            "tuner_id": tuner_of.get(trial_id, ""),
        }
        row.update({name: values.get(name) for name in models.SEARCH_SPACE})
        row.update({column: values[key] for key, column in HYPERBAND_COLUMNS.items() if key in values})
        row["error"] = "" if completed else _last_line(trial.message)
        rows.append(row)
        if metrics.exists(OBJECTIVE):
            names = [name for name in ("accuracy", "loss", OBJECTIVE, "val_loss") if metrics.exists(name)]
            histories = {
                name: {obs.step: float(np.mean(obs.value)) for obs in metrics.get_history(name)} for name in names
            }
            for step in sorted(histories[OBJECTIVE]):
                epoch_row = {"trial_id": trial_id, "epoch": int(step) + 1}
                epoch_row.update({name: histories[name].get(step) for name in names})
                epoch_rows.append(epoch_row)
    columns = ["trial", "trial_id", "status", OBJECTIVE, "best_epoch", "epochs", "seconds", "tuner_id"]
    columns += [
        *models.SEARCH_SPACE,
        *(c for c in HYPERBAND_COLUMNS.values() if any(c in row for row in rows)),
        "error",
    ]
    table = pd.DataFrame(rows, columns=columns)
    for column in ("best_epoch", "epochs", "epoch_budget", "initial_epoch", "bracket", "round"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table, pd.DataFrame(epoch_rows, columns=["trial_id", "epoch", "accuracy", "loss", OBJECTIVE, "val_loss"])


def _last_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def encode_hparams(table: pd.DataFrame) -> pd.DataFrame:
    """The hyperparameter columns as numbers for a regression: numeric choices as they are,
    activations by their position in the space, L2 factors as log10."""
    encoded = {}
    for name, domain in models.SEARCH_SPACE.items():
        column = table[name]
        if "values" not in domain:
            encoded[name] = np.log10(column.astype(float)) if domain.get("log") else column.astype(float)
        elif all(isinstance(v, int | float) for v in domain["values"]):
            encoded[name] = column.astype(float)
        else:
            encoded[name] = column.map({value: i for i, value in enumerate(domain["values"])}).astype(float)
    return pd.DataFrame(encoded, index=table.index)


def hparam_importance(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame | None, str]:
    """Permutation importance of each hyperparameter for a random forest fitted to the completed
    trials' objective (scikit-learn), most important first; None and the reason when too few
    trials or no spread in the objective make it meaningless."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    done = table[table["status"] == "COMPLETED"]
    which = "completed trials"
    if "epoch_budget" in done and done["epoch_budget"].nunique() > 1:
        # Hyperband trains trials for different epoch budgets (and continues the best): a 10-epoch
        # score beats a 2-epoch one whatever the hyperparameters, so compare equal budgets only.
        fresh = done[done["initial_epoch"].fillna(0) == 0]
        budget = fresh["epoch_budget"].value_counts().idxmax()
        done = fresh[fresh["epoch_budget"] == budget]
        which = f"Hyperband trials trained from scratch for {int(budget)} epochs (equal budgets only)"
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (
            f"importance needs ≥ {MIN_TRIALS_FOR_IMPORTANCE} comparable completed trials; this search has {len(done)}"
        )
    y = done[OBJECTIVE].astype(float).to_numpy()
    if np.ptp(y) == 0:
        return None, f"all {len(done)} {which} have the same {OBJECTIVE}: nothing to explain"
    x = encode_hparams(done)
    forest = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=seed).fit(x, y)
    result = permutation_importance(forest, x, y, n_repeats=PERMUTATION_REPEATS, random_state=seed)
    importance = pd.DataFrame(
        {"hyperparameter": x.columns, "importance": result.importances_mean, "std": result.importances_std}
    ).sort_values("importance", ascending=False, ignore_index=True)
    note = (
        f"random forest ({FOREST_TREES} trees) on {len(done)} {which}; importance = mean drop of its R²"
        f" when a hyperparameter's column is shuffled ({PERMUTATION_REPEATS} repeats); only indicative with few trials"
    )
    return importance, note


def write_results(
    oracle: Any,
    spec: TuneSpec,
    out: str | Path,
    config: dict[str, Any],
    *,
    data_source: str,
    stopped: str | None = None,
    resumable: bool = False,
    seconds: float | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the trials table, plots, summary and (when a trial completed) best_hparams.json.

    ``stopped``: why the search ended before its budget; ``resumable``: whether rerunning the
    same command continues it (a time budget ran out) or not (keras-tuner's failure limit)."""
    out = Path(out)
    table, epochs = trials_table(oracle)
    atomic_write(out / TRIALS_FILE, lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out / EPOCHS_FILE, lambda tmp: epochs.to_csv(tmp, index=False))
    done = table[table["status"] == "COMPLETED"] if len(table) else table
    if done.empty:
        (out / BEST_FILE).unlink(missing_ok=True)
        error = next((e for e in reversed(list(table["error"])) if e), "") if len(table) else ""
        raise LenetError(
            f"{out}: none of the {len(table)} trial(s) completed, so there are no best hyperparameters"
            + (f"; the last error: {error}" if error else "")
            + f" (details in {out / PROJECT}/trial_*/trial.json)"
        )
    summary = _best_summary(table, spec, config) | {"stopped": stopped, "resumable": resumable}
    summary |= {"data_source": data_source, "results": str(out), "environment": environment()}
    if seconds is not None:
        summary["session_seconds"] = round(seconds, 2)
    write_json(out / BEST_FILE, summary)
    importance, note = _write_plots(table, epochs, summary, spec, out)
    write_text(out / SUMMARY_FILE, summary_markdown(summary, table, importance, note))
    if stopped and resumable:
        echo(f"the search stopped early: {stopped} Results cover the {len(done)} completed trial(s);"
             " rerun the same command to continue it")  # fmt: skip
    elif stopped:
        echo(
            f"warning: the search stopped early: {stopped} Results cover the {len(done)} completed trial(s);"
            f" the error column of {out / TRIALS_FILE} says why trials failed. keras-tuner will not go on with this"
            " search: fix the cause and start afresh with --overwrite"
        )
    echo(
        f"best {OBJECTIVE} {summary[OBJECTIVE]:.4f} (trial {summary['trial']}) of {len(done)} completed trial(s);"
        f" {out / BEST_FILE}, {out / TRIALS_FILE}, {out / SUMMARY_FILE} and plots in {out}"
    )
    return summary


def _best_summary(table: pd.DataFrame, spec: TuneSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The best completed trial and the search's counts and timings."""
    done = table[table["status"] == "COMPLETED"]
    best = done.loc[done[OBJECTIVE].idxmax()]
    hparams = models.LeNetHParams.from_dict({name: _plain(best[name]) for name in models.SEARCH_SPACE})
    hparams.validate(source=f"trial {best['trial']}")
    return {
        "hparams": hparams.to_dict(),
        "objective": OBJECTIVE,
        OBJECTIVE: float(best[OBJECTIVE]),
        "trial": int(best["trial"]),
        "trial_id": str(best["trial_id"]),
        "tuner_id": str(best["tuner_id"]),
        "best_epoch": _plain(best["best_epoch"]),
        "tuner": spec.tuner,
        "trials": {
            "total": len(table),
            "completed": len(done),
            "failed": int(table["status"].isin(["FAILED", "INVALID"]).sum()),
            "budget": spec.trials,
        },
        "train_seconds": round(float(done["seconds"].fillna(0).sum()), 2),
        "seconds_per_trial": round(float(done["seconds"].mean()), 2),
        "epochs_per_trial": round(float(done["epochs"].astype(float).mean()), 2),
        "config": config,
    }


def _write_plots(
    table: pd.DataFrame, epochs: pd.DataFrame, summary: dict[str, Any], spec: TuneSpec, out: Path
) -> tuple[pd.DataFrame | None, str]:
    """The three plots, every trial named by its number (the trials table's ``trial`` column)."""
    title = f"{spec.tuner} search"
    plot_optimization_history(list(table[OBJECTIVE].where(table[OBJECTIVE].notna(), None)), out / PLOTS[0], title)
    curves = [
        (str(trial_number(trial_id)), list(group["epoch"]), list(group[OBJECTIVE]))
        for trial_id, group in epochs.groupby("trial_id", sort=False)
    ]
    plot_intermediate_values(curves, out / PLOTS[1], title, best=str(summary["trial"]))
    importance, note = hparam_importance(table, seed=spec.seed)
    if importance is None:
        plot_hparam_importance([], [], [], out / PLOTS[2], title, note=note)
    else:
        plot_hparam_importance(
            list(importance["hyperparameter"]), list(importance["importance"]), list(importance["std"]),
            out / PLOTS[2], title,
        )  # fmt: skip
    return importance, note


def _plain(value: Any) -> Any:
    """NumPy / pandas scalars → Python ones (JSON, dataclass validation)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def summary_markdown(summary: dict[str, Any], table: pd.DataFrame, importance: pd.DataFrame | None, note: str) -> str:
    """The search as Markdown: settings, best trial against the published values, top trials,
    importance, files."""
    config, trials = summary["config"], summary["trials"]
    train = config["train"]
    lines = [
        f"# Hyperparameter search ({summary['tuner']})\n\n",
        f"Data: {summary['data_source']}; evaluation split {config['split_sizes']}"
        f" (split seed {config['split_seed']}).\n",
        f"Objective: {config['objective']} on the validation part. Every trial: batch {train['batch_size']},"
        f" ≤ {train['epochs']} epochs, early stopping patience {train['patience']}, seed {config['seed']}.\n\n",
        f"Trials: {trials['total']} ({trials['completed']} completed, {trials['failed']} failed"
        + (f", budget {trials['budget']}" if trials["budget"] else "")
        + f"); training time {summary['train_seconds']:.0f} s in all, {summary['seconds_per_trial']:.1f} s and"
        f" {summary['epochs_per_trial']:.1f} epochs per completed trial.\n",
    ]
    if summary["stopped"]:
        rerun = " Rerun the same command to continue it." if summary.get("resumable") else ""
        lines.append(f"\n**The search stopped early:** {summary['stopped']}{rerun}\n")
    lines.append(
        f"\nBest: trial {summary['trial']} (tuner {summary['tuner_id']}), {OBJECTIVE}"
        f" **{summary[OBJECTIVE]:.4f}** at epoch {summary['best_epoch']}.\n\n"
    )
    published = models.OPTIMIZED_HPARAMS.to_dict()
    rows = [[name, _fmt(value), _fmt(published[name])] for name, value in summary["hparams"].items()]
    lines.append("## Best hyperparameters\n\n" + markdown_table(["hyperparameter", "best", "published"], rows))
    done = table[table["status"] == "COMPLETED"].sort_values(OBJECTIVE, ascending=False).head(10)
    columns = ["trial", OBJECTIVE, "epochs", "seconds", "tuner_id", *models.SEARCH_SPACE]
    top = [[_fmt(row[c]) for c in columns] for _, row in done.iterrows()]
    lines.append(f"\n## Top {len(top)} trials\n\n" + markdown_table(columns, top))
    lines.append("\n## Hyperparameter importance\n\n")
    if importance is None:
        lines.append(f"Not computed: {note}.\n")
    else:
        rows = [[r.hyperparameter, f"{r.importance:.4f} ± {r.std:.4f}"] for r in importance.itertuples()]
        lines.append(f"{note}.\n\n" + markdown_table(["hyperparameter", "importance"], rows))
    files = ", ".join(f"`{name}`" for name in OUTPUTS if name != SUMMARY_FILE)
    lines.append(f"\n## Files\n\n{files}; keras-tuner's project in `{PROJECT}/`.\n")
    return "".join(lines)


def _fmt(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 else f"{value:.4f}"
    return "" if value is None else str(value)
