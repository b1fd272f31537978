"""Hyperparameter search: the space, outputs, resumption, failures, CLI errors, distributed mode."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lenet_tf import models
from lenet_tf.cli import main
from lenet_tf.data import DigitData
from lenet_tf.errors import LenetError
from lenet_tf.experiments.tuning import (
    OUTPUTS,
    PLOTS,
    LeNetHyperModel,
    TuneSpec,
    hparam_importance,
    hyperband_budget,
    search_space,
    tune,
)
from lenet_tf.models import DEFAULT_BEST_HPARAMS, OPTIMIZED_HPARAMS, SEARCH_SPACE, load_hparams, resolve_model

TINY_SEARCH = {"epochs": 1}


def test_hypermodel_covers_exactly_the_search_space() -> None:
    hp = search_space()
    assert [p.name for p in hp.space] == list(SEARCH_SPACE)
    for p in hp.space:
        domain = SEARCH_SPACE[p.name]
        config = p.get_config()
        if "values" in domain:
            assert list(config["values"]) == list(domain["values"])
        else:
            assert (config["min_value"], config["max_value"], config["sampling"]) == (
                domain["min"],
                domain["max"],
                "log",
            )
    # Building declares the same space and gives the study's topology for the drawn values.
    import keras_tuner

    built_hp = keras_tuner.HyperParameters()
    model = LeNetHyperModel().build(built_hp)
    assert [p.name for p in built_hp.space] == list(SEARCH_SPACE)
    assert model.count_params() == models.lenet(built_hp.values).count_params()


def test_hyperband_budget_matches_keras_tuner_schedule() -> None:
    # max_epochs 10, factor 3: brackets of 12→4→2, 6→2 and 4 trials; 44 + 36 + 40 epochs.
    assert hyperband_budget(10) == (30, 120)


def test_search_writes_outputs_and_resumes_without_redoing_trials(tiny: DigitData, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    lines: list[str] = []
    tune(TuneSpec(max_trials=2, **TINY_SEARCH), out, data=tiny, progress=False, echo=lines.append)
    assert sum(": trial " in line for line in lines) == 2

    lines.clear()  # a larger budget extends the search by exactly the missing trial
    tune(TuneSpec(max_trials=3, **TINY_SEARCH), out, data=tiny, progress=False, echo=lines.append)
    assert sum(": trial " in line for line in lines) == 1, lines
    assert any("resuming the search" in line for line in lines)

    lines.clear()  # the same budget again: nothing to train, outputs rewritten
    summary = tune(TuneSpec(max_trials=3, **TINY_SEARCH), out, data=tiny, progress=False, echo=lines.append)
    assert not any(": trial " in line for line in lines), lines

    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_hparams(out / "best_hparams.json").to_dict() == summary["hparams"]
    best = json.loads((out / "best_hparams.json").read_text())
    assert best["trials"] == {"total": 3, "completed": 3, "failed": 0, "budget": 3}

    table = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    assert list(table["trial"]) == [1, 2, 3]
    assert set(table["status"]) == {"COMPLETED"}
    assert {"trial_id", "val_accuracy", "epochs", "seconds", "tuner_id", *SEARCH_SPACE} <= set(table.columns)
    assert (table["epochs"] == 1).all() and (table["seconds"] > 0).all()
    assert best["val_accuracy"] == pytest.approx(table["val_accuracy"].max())
    epochs = pd.read_csv(out / "trial_epochs.csv", dtype={"trial_id": str})
    assert sorted(epochs["trial_id"]) == sorted(table["trial_id"]) and set(epochs["epoch"]) == {1}
    # Issue 18 item 11: one numbering everywhere. summary.md and stdout said "Best: trial 1" (keras-tuner's
    # 0-based id) where optimization_history.png, which plots trials.csv's `trial` column, had it at 2.
    number = int(table.loc[table["val_accuracy"].idxmax(), "trial"])
    assert best["trial"] == number and f"Best: trial {number} (" in (out / "summary.md").read_text()
    assert any(f"(trial {number}) of 3 completed" in line for line in lines), lines

    # Issue 18 item 1: --overwrite (the --force of tune) deleted the whole directory, a user's notes too.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LenetError, match=r"holds notes.txt, which no lenet_tf run wrote"):
        tune(TuneSpec(max_trials=3, **TINY_SEARCH), out, data=tiny, overwrite=True, progress=False, echo=lines.append)
    assert (out / "notes.txt").exists() and (out / "best_hparams.json").exists() and (out / "search").is_dir()


def test_time_budget_stops_starting_trials(tiny: DigitData, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    lines: list[str] = []
    # 1.2 seconds: the first trial starts at once and takes longer than that (building, tracing and
    # fitting a model), so the second never starts.
    summary = tune(
        TuneSpec(max_trials=2, time_budget=0.02, **TINY_SEARCH), out, data=tiny, progress=False, echo=lines.append
    )
    started = sum(": trial " in line for line in lines)
    assert started == 1, lines
    assert summary["trials"]["completed"] == started
    # Issue 18 item 11: a search stopped by its time budget reported "stopped": null and no way on.
    assert summary["stopped"] == "the time budget of 0.02 minute(s) ran out." and summary["resumable"]
    assert "ran out. Rerun the same command to continue it." in (out / "summary.md").read_text()
    assert any("rerun the same command to continue it" in line for line in lines), lines
    # Rerun without a budget: the search resumes and completes its 2 trials.
    lines.clear()
    summary = tune(TuneSpec(max_trials=2, **TINY_SEARCH), out, data=tiny, progress=False, echo=lines.append)
    assert sum(": trial " in line for line in lines) == 2 - started
    assert summary["trials"]["completed"] == 2


def test_every_trial_failing_is_an_error_not_a_best(tiny: DigitData, tmp_path: Path, monkeypatch) -> None:
    def broken_fit(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(LeNetHyperModel, "fit", broken_fit)
    out = tmp_path / "tune"
    # keras-tuner stops after 2 consecutive failures here, long before the budget of 5.
    spec = TuneSpec(max_trials=5, max_consecutive_failed_trials=2, **TINY_SEARCH)
    with pytest.raises(LenetError, match=r"none of the 2 trial\(s\) completed.*RuntimeError: boom") as error:
        tune(spec, out, data=tiny, progress=False, echo=lambda _: None)
    assert "\n" not in str(error.value)
    assert not (out / "best_hparams.json").exists()
    assert set(pd.read_csv(out / "trials.csv")["status"]) == {"FAILED"}


def test_importance_ranks_the_hyperparameter_that_matters() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        row = {
            name: rng.choice(d["values"]) if "values" in d else 10 ** rng.uniform(-6, -2)
            for name, d in SEARCH_SPACE.items()
        }
        row["status"], row["val_accuracy"] = "COMPLETED", 0.9 + 0.01 * int(row["filters_2"]) / 13
        rows.append(row)
    importance, _ = hparam_importance(pd.DataFrame(rows))
    assert importance is not None and importance["hyperparameter"][0] == "filters_2"
    few, note = hparam_importance(pd.DataFrame(rows[:2]))
    assert few is None and "≥ 3 comparable completed trials" in note
    # Hyperband: continued trials with longer budgets score higher whatever filters_2 is; ranked on
    # the equal-budget fresh trials, filters_2 still comes first and the note says which were used.
    fresh = [r | {"epoch_budget": 2, "initial_epoch": 0} for r in rows]
    continued = [r | {"epoch_budget": 10, "initial_epoch": 2, "val_accuracy": 0.99, "units_1": 32} for r in rows[:8]]
    importance, note = hparam_importance(pd.DataFrame(fresh + continued))
    assert importance is not None and importance["hyperparameter"][0] == "filters_2"
    assert "40 Hyperband trials trained from scratch for 2 epochs" in note


def test_optimized_model_uses_the_search_result_when_present(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    _, info = resolve_model("optimized", echo=said.append)
    assert info["hparams_source"] == "preset" and "published" in said[-1]

    found = OPTIMIZED_HPARAMS.to_dict() | {"filters_1": 3, "units_2": 32}
    DEFAULT_BEST_HPARAMS.parent.mkdir(parents=True)
    DEFAULT_BEST_HPARAMS.write_text(json.dumps({"hparams": found, "val_accuracy": 0.99}))
    builder, info = resolve_model("optimized", echo=said.append)
    assert info["hparams_source"] == str(DEFAULT_BEST_HPARAMS) and info["hparams"] == found
    assert str(DEFAULT_BEST_HPARAMS) in said[-1]
    assert builder().count_params() == models.lenet(found).count_params() != models.optimized_lenet().count_params()

    _, info = resolve_model("optimized", "preset", echo=said.append)
    assert info["hparams_source"] == "preset"


WORKER = ["--role", "worker", "--oracle-ip", "127.0.0.1", "--oracle-port", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trials", "0"], "argument --trials: must be an integer ≥ 1, got '0'"),
        (["--tuner", "grid"], "argument --tuner: invalid choice: 'grid'"),
        (["--oracle-port", "99999"], "argument --oracle-port: must be a port number in [1, 65535], got '99999'"),
        (["--oracle-ip", "127.0.0.1"], "--oracle-ip applies with --role chief or --role worker only"),
        (["--role", "worker", "--oracle-port", "8000"], "--role worker needs --oracle-ip"),
        (["--role", "chief", "--oracle-ip", "127.0.0.1"], "--role chief needs --oracle-port"),
        ([*WORKER, "--tuner-id", "chief2"], "--tuner-id 'chief2': a worker's id must not contain 'chief'"),
        ([*WORKER, "--tuner-id", "a b"], "--tuner-id 'a b': use letters, digits"),
        ([*WORKER, "--tuner-id", "w", "--overwrite"], "--overwrite applies to the chief"),
        (
            ["--tuner", "hyperband", "--trials", "5"],
            "--trials does not apply to --tuner hyperband: its trials follow from --epochs",
        ),
        (["--patience", "-1"], "argument --patience: must be an integer ≥ 0, got '-1'"),
        (["--time-budget", "0"], "argument --time-budget: must be a number > 0, got '0'"),
    ],
)
def test_bad_tune_arguments_give_one_line(argv, message, kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("KERASTUNER")}
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(main(["tune", "--data", str(kaggle_dir), "--out", str(tmp_path / "t"), "--no-progress", *argv]))
    err = capsys.readouterr().err
    assert excinfo.value.code == 2
    assert err.count("\n") == 1 and err.startswith("lenet-tf: error: ") and message in err, err
    assert {k: v for k, v in os.environ.items() if k.startswith("KERASTUNER")} == before
    assert not (tmp_path / "t" / "best_hparams.json").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(path: Path, text: str, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if any(p.poll() not in (None, 0) for p in processes):
            break
        time.sleep(0.2)
    raise AssertionError(f"{path.name} never said {text!r}:\n{path.read_text() if path.is_file() else ''}")


def test_chief_and_two_workers_on_loopback(kaggle_dir: Path, tmp_path: Path) -> None:
    port = str(_free_port())
    out = tmp_path / "tune"
    common = [sys.executable, "-m", "lenet_tf.cli", "tune", "--data", str(kaggle_dir), "--trials", "3", "--epochs", "1",
              "--out", str(out), "--no-progress", "--oracle-ip", "127.0.0.1", "--oracle-port", port]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {k: v for k, v in env.items() if not k.startswith("KERASTUNER")}
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2", "chief")}
    processes: dict[str, subprocess.Popen] = {}
    try:
        # Workers first, waiting for the chief: each then gets a trial as soon as the chief is up,
        # so both run trials however their start-up times differ.
        for name in ("w1", "w2"):
            with logs[name].open("w") as log:
                processes[name] = subprocess.Popen(
                    [*common, "--role", "worker", "--tuner-id", name], stdout=log, stderr=subprocess.STDOUT, env=env
                )
        for name in ("w1", "w2"):
            _wait_for(logs[name], "asking the chief", list(processes.values()), timeout=120)
        with logs["chief"].open("w") as log:
            processes["chief"] = subprocess.Popen(
                [*common, "--role", "chief"], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        for name, process in processes.items():
            assert process.wait(timeout=180) == 0, f"{name}:\n{logs[name].read_text()}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()

    table = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    print("\n" + table[["trial_id", "tuner_id", "status", "val_accuracy", "epochs", "seconds"]].to_string(index=False))
    assert len(table) == 3 and set(table["status"]) == {"COMPLETED"}  # one worker runs two trials
    assert set(table["tuner_id"]) == {"w1", "w2"}
    ran = {name: logs[name].read_text().count(f"{name}: trial ") for name in ("w1", "w2")}
    assert ran["w1"] >= 1 and ran["w2"] >= 1 and sum(ran.values()) == 3, ran
    assert load_hparams(out / "best_hparams.json")
    assert "best val_accuracy" in logs["chief"].read_text()
