"""Reliability: a corpus of bad inputs, kill-and-resume, and determinism across processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import types
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import pandas as pd
import pytest

from lenet_tf import interrupts
from lenet_tf.cli import main
from lenet_tf.data import split_data
from lenet_tf.models import OPTIMIZED_HPARAMS, classic_lenet5
from lenet_tf.submission import read_submission
from lenet_tf.training import TrainConfig, train

EXE = Path(sys.executable).with_name("lenet-tf")


def _edit_line(path: Path, index: int, edit: Callable[[str], str]) -> None:
    lines = path.read_text().splitlines()
    lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n")


def _set_field(line: str, column: int, value: str) -> str:
    fields = line.split(",")
    fields[column] = value
    return ",".join(fields)


def _case_data(kaggle: Path, tmp: Path, case: str) -> list[str]:
    """Make the bad input for ``case`` and return the CLI arguments that use it."""
    train, test = kaggle / "train.csv", kaggle / "test.csv"
    edits = {
        "truncated row": lambda: _edit_line(train, 5, lambda s: s.rsplit(",", 3)[0]),
        "extra column": lambda: _edit_line(train, 5, lambda s: s + ",0"),
        "header typo": lambda: _edit_line(train, 0, lambda s: s.replace("pixel7,", "pixle7,")),
        "pixel 256": lambda: _edit_line(train, 2, lambda s: _set_field(s, 100, "256")),
        "negative pixel": lambda: _edit_line(train, 2, lambda s: _set_field(s, 100, "-3")),
        "float pixel": lambda: _edit_line(train, 2, lambda s: _set_field(s, 100, "12.5")),
        "text pixel": lambda: _edit_line(train, 2, lambda s: _set_field(s, 100, "dark")),
        "missing value": lambda: _edit_line(train, 2, lambda s: _set_field(s, 100, "")),
        "label 10": lambda: _edit_line(train, 4, lambda s: _set_field(s, 0, "10")),
        "empty file": lambda: train.write_text(""),
        "header only": lambda: train.write_text(train.read_text().splitlines()[0] + "\n"),
        "test with label column": lambda: test.write_text(train.read_text()),
    }
    if case in edits:
        edits[case]()
        return ["--data", str(kaggle)]
    if case == "zip without train.csv":
        archive = tmp / "digit-recognizer.zip"
        with zipfile.ZipFile(archive, "w") as handle:
            handle.write(test, "test.csv")
        return ["--data", str(archive)]
    if case == "not a zip":
        archive = tmp / "digit-recognizer.zip"
        archive.write_text("PK? no")
        return ["--data", str(archive)]
    if case == "missing file":
        return ["--data", str(tmp / "nowhere" / "train.csv")]
    if case == "directory without data":
        (tmp / "emptydir").mkdir()
        return ["--data", str(tmp / "emptydir")]
    raise AssertionError(case)


DATA_CASES = {
    "truncated row": "train.csv: line 6: 782 fields, expected 785",
    "extra column": "train.csv: line 6: 786 fields, expected 785",
    "header typo": "train.csv: line 1: header column 9 is 'pixle7', expected 'pixel7'",
    "pixel 256": "train.csv: line 3: column 'pixel99' is 256, expected an integer 0-255",
    "negative pixel": "train.csv: line 3: column 'pixel99' is -3, expected an integer 0-255",
    "float pixel": "train.csv: line 3: column 'pixel99' is '12.5', not an integer",
    "text pixel": "train.csv: line 3: column 'pixel99' is 'dark', not an integer",
    "missing value": "train.csv: line 3: column 'pixel99' is missing",
    "label 10": "train.csv: line 5: column 'label' is 10, expected a digit 0-9",
    "empty file": "train.csv: the file is empty",
    "header only": "train.csv: the file has a header but no data rows",
    "test with label column": "test.csv: line 1: header column 1 is 'label', expected 'pixel0'",
    "zip without train.csv": "digit-recognizer.zip: the zip holds no train.csv",
    "not a zip": "digit-recognizer.zip: not a valid zip file",
    "missing file": "nowhere/train.csv: no such file or directory",
    "directory without data": "emptydir: the directory holds neither train.csv nor digit-recognizer.zip",
}


def _assert_one_line_error(capsys, expected: str) -> None:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lenet-tf: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_corpus(case: str, kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["train", "--model", "classic", "--epochs", "1", "--out", str(out), *_case_data(kaggle_dir, tmp_path, case)]
    assert main(argv) == 2
    _assert_one_line_error(capsys, DATA_CASES[case])
    assert not out.exists()  # nothing half-written


def _domain_error_file(tmp: Path) -> str:
    return _hparams_file(tmp, json.dumps(OPTIMIZED_HPARAMS.to_dict() | {"pool_size_1": 3}))


# The ensemble command under the reference recipe (its default, the flagship, turns early stopping off).
REFERENCE = ["ensemble", "--recipe", "reference"]


def _hparams_file(tmp: Path, content: str) -> str:
    path = tmp / "hp.json"
    path.write_text(content)
    return str(path)


ARGUMENT_CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("unknown model", lambda t: ["train", "--model", "alexnet"], "unknown model 'alexnet'"),
    ("members 0", lambda t: ["ensemble", "--members", "0"], "argument --members: must be an integer ≥ 1, got '0'"),
    ("negative epochs", lambda t: ["train", "--epochs", "-1"], "argument --epochs: must be an integer ≥ 1, got '-1'"),
    ("text batch size", lambda t: ["train", "--batch-size", "big"], "argument --batch-size: must be an integer ≥ 1"),
    ("negative seed", lambda t: ["train", "--seed", "-4"],
     "argument --seed: must be an integer in [0, 4294967295], got '-4'"),
    ("unknown protocol", lambda t: ["train", "--split", "kfold"], "argument --split: invalid choice: 'kfold'"),
    ("unknown command", lambda t: ["fit"], "argument COMMAND: invalid choice: 'fit'"),
    ("max-train too small", lambda t: ["train", "--max-train", "5"], "--max-train 5 is too small"),
    ("repeats 0", lambda t: ["evaluate", "--repeats", "0"], "argument --repeats: must be an integer ≥ 1, got '0'"),
    ("fraction above 1", lambda t: ["learning-curve", "--fractions", "0.5,2"],
     "--fractions: '2' is not a fraction in (0, 1]"),
    ("hparams for standard", lambda t: ["train", "--model", "standard", "--hparams", "x.json"], "--hparams applies to"),
    ("malformed hparams JSON", lambda t: [*REFERENCE, "--hparams", _hparams_file(t, '{"units_1": 64,')],
     "hp.json: line 1: malformed JSON"),
    ("hparams out of domain",
     lambda t: [*REFERENCE, "--hparams", _domain_error_file(t)],
     "hp.json: pool_size_1=3 is not allowed; choose one of 2, 4"),
    ("hparams unknown key", lambda t: [*REFERENCE, "--hparams",
                                       _hparams_file(t, json.dumps(OPTIMIZED_HPARAMS.to_dict() | {"lr": 0.1}))],
     "hp.json: unknown hyperparameter 'lr'"),
    ("hparams missing file", lambda t: [*REFERENCE, "--hparams", str(t / "none.json")], "none.json: no such file"),
    ("output under a file", lambda t: ["train", "--out", str(Path(_hparams_file(t, "x")) / "run")],
     "cannot write there"),
    ("predict without run", lambda t: ["predict", "--run", str(t / "norun"), "--submission", str(t / "s.csv")],
     "norun: no saved members"),
    ("unknown lr schedule", lambda t: ["ensemble", "--lr-schedule", "warmup"],
     "argument --lr-schedule: invalid choice"),
    ("negative learning rate", lambda t: ["train", "--learning-rate", "-0.1"],
     "argument --learning-rate: must be a number in (0, 10], got '-0.1'"),
    ("negative tta", lambda t: ["ensemble", "--tta", "-1"], "argument --tta: must be an integer ≥ 0, got '-1'"),
    ("unknown recipe", lambda t: ["ensemble", "--recipe", "best"], "argument --recipe: invalid choice: 'best'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "expected"), ARGUMENT_CASES, ids=[c[0] for c in ARGUMENT_CASES])
def test_bad_argument_corpus(case, argv, expected, kaggle_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = [*argv(tmp_path), "--data", str(kaggle_dir)]
    if full[0] in ("train", "ensemble", "evaluate", "learning-curve"):
        full += ["--epochs", "1"] if "--epochs" not in full else []
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(main(full))
    assert excinfo.value.code == 2
    _assert_one_line_error(capsys, expected)
    assert not (tmp_path / "results").exists() and not (tmp_path / "s.csv").exists()


def test_config_file_cases_keep_existing_runs(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"model": ')
    argv = ["train", "--model", "classic", "--data", str(kaggle_dir), "--out", str(out), "--epochs", "1"]
    assert main(argv) == 2
    _assert_one_line_error(capsys, "config.json: line 1: malformed JSON")
    assert (out / "config.json").read_text() == '{"model": '

    (out / "config.json").write_text(json.dumps({"model": "something else"}))
    assert main(argv) == 2
    _assert_one_line_error(capsys, "holds a run with a different configuration")
    assert json.loads((out / "config.json").read_text()) == {"model": "something else"}


def test_subprocess_errors_have_no_traceback(kaggle_dir: Path) -> None:
    _edit_line(kaggle_dir / "train.csv", 3, lambda s: _set_field(s, 10, "300"))
    done = subprocess.run([EXE, "train", "--data", str(kaggle_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # TensorFlow's start-up chatter is silenced too
    assert lines[0].endswith("column 'pixel9' is 300, expected an integer 0-255")


def test_kill_and_resume_finishes_without_retraining(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [EXE, *REFERENCE, "--model", "classic", "--members", "3", "--epochs", "1", "--data", str(kaggle_dir),
            "--out", str(out), "--no-progress"]  # fmt: skip
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = random.Random(1)
    for attempt in range(3):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if attempt == 1:  # once, make sure a member has finished, then kill at a random moment after
            deadline = time.monotonic() + 120
            while not (out / "members" / "member_01.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            time.sleep(rng.uniform(3.0, 9.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished_before = {p.name: p.stat().st_mtime_ns for p in (out / "members").glob("member_*.json")}
    assert finished_before  # the resume path is exercised
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, stamp in finished_before.items():
        assert (out / "members" / name).stat().st_mtime_ns == stamp  # finished members not retrained
    assert done.stdout.count(": loaded,") == len(finished_before)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["member"] for m in metrics["members"]] == [1, 2, 3]
    assert len(read_submission(out / "submission.csv", expected_rows=50)) == 50
    assert not list(out.rglob(".*.partial*"))


def test_ctrl_c_stops_with_one_line_and_the_finished_member_kept(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Member 2 must still be training a second after member 1 finished: 20 epochs of LeNet-5 on the
    # 420 training digits take several seconds (and member 1, trained first, as long).
    argv = [EXE, *REFERENCE, "--model", "classic", "--members", "3", "--epochs", "20", "--patience", "20",
            "--data", str(kaggle_dir), "--out", str(out), "--no-progress"]  # fmt: skip
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}

    def default_sigint() -> None:  # a shell's background jobs (CI) start with Ctrl-C ignored; a terminal's do not
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint
    )
    deadline = time.monotonic() + 180
    while not (out / "members" / "member_01.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the second member is training
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines() == ["lenet-tf: interrupted; run the same command again to resume"]
    saved = sorted(p.name for p in (out / "members").glob("member_*") if not p.name.endswith("_history.csv"))
    assert saved == ["member_01.json", "member_01.keras"]  # the second member's history so far stays readable
    assert not list(out.rglob(".*.partial*"))


@pytest.fixture
def ctrl_c_enabled() -> Iterator[None]:
    """Ctrl-C raising KeyboardInterrupt, as in a terminal (CI may start the tests with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _SwallowedCtrlC(keras.callbacks.Callback):
    """Presses Ctrl-C in the first batch and swallows it, as a weakref callback inside Keras can."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs_ended = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.epochs_ended == 0 and batch == 0:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1.0)  # the handler runs in the main thread at the next bytecode
            except KeyboardInterrupt:
                pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs_ended += 1


def test_a_swallowed_ctrl_c_still_stops_training_at_the_epoch_end(tiny, ctrl_c_enabled) -> None:
    split = split_data(tiny, "deployment", seed=0)
    swallow = _SwallowedCtrlC()
    with interrupts.handle_ctrl_c(), pytest.raises(KeyboardInterrupt):
        train(classic_lenet5, split, config=TrainConfig(epochs=3, patience=3), seed=1, progress=False,
              callbacks=[swallow])  # fmt: skip
    assert swallow.epochs_ended == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the block


def test_ctrl_c_that_tensorflow_turned_into_another_error_exits_130(ctrl_c_enabled, monkeypatch, capsys) -> None:
    def traced(_args) -> None:  # what pybind11 does to a Ctrl-C during graph tracing
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            raise RuntimeError("MISMATCH of original and normalized active exception types") from None

    monkeypatch.setattr("lenet_tf.cli._run", traced)
    assert main(["train", "--model", "standard"]) == 130
    assert capsys.readouterr().err.strip() == "lenet-tf: interrupted; run the same command again to resume"


def test_ctrl_c_inside_a_finalizer_is_recorded_not_raised(ctrl_c_enabled, capsys) -> None:
    """A Ctrl-C landing in a weakref callback printed "Exception ignored in … KeyboardInterrupt" and a
    traceback on stderr (seen in CI as a flaky failure of the Ctrl-C test): there it is only
    recorded, and the next check raises it."""
    frames = []

    class Finalized:
        def __del__(self) -> None:
            frames.append(sys._getframe())

    Finalized()
    weakref_frame = types.SimpleNamespace(f_code=types.SimpleNamespace(co_name="remove", co_filename="/x/weakref.py"))
    with interrupts.handle_ctrl_c():
        for frame in (frames[0], weakref_frame):
            interrupts._on_sigint(signal.SIGINT, frame)  # no KeyboardInterrupt here
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        with pytest.raises(KeyboardInterrupt):  # anywhere else it interrupts at once, as before
            interrupts._on_sigint(signal.SIGINT, sys._getframe())
    assert capsys.readouterr().err == ""


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or a shell's background job
    try:
        with interrupts.handle_ctrl_c():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        interrupts.check()  # nothing recorded: raises KeyboardInterrupt otherwise
    finally:
        signal.signal(signal.SIGINT, previous)


def test_same_seed_same_predictions_across_processes(kaggle_dir: Path, tmp_path: Path) -> None:
    runs = [tmp_path / name for name in ("a", "b")]
    processes = []
    for out in runs:  # two processes at once (independent: each its own directory)
        argv = [EXE, "train", "--model", "standard", "--epochs", "2", "--seed", "3", "--data", str(kaggle_dir),
                "--out", str(out), "--no-progress"]  # fmt: skip
        processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert (runs[0] / "submission.csv").read_text() == (runs[1] / "submission.csv").read_text()
    first, second = (json.loads((r / "members" / "member_01.json").read_text()) for r in runs)
    assert first["history"] == second["history"]


def _completed_trials(out: Path) -> int:
    completed = 0
    for path in out.glob("search/trial_*/trial.json"):
        try:
            completed += json.loads(path.read_text()).get("status") == "COMPLETED"
        except json.JSONDecodeError:  # keras-tuner writes it in place: polled mid-write, it is read next time
            continue
    return completed


def test_trials_are_counted_while_keras_tuner_writes_one(tmp_path: Path) -> None:
    # The kill-and-resume test polls while the search runs; once it read a trial.json being written.
    for name, text in (("trial_0", '{"status": "COMPLETED"}'), ("trial_1", ""), ("trial_2", '{"status": "RUN')):
        (tmp_path / "search" / name).mkdir(parents=True)
        (tmp_path / "search" / name / "trial.json").write_text(text)
    assert _completed_trials(tmp_path) == 1


def test_search_kill_and_resume_loses_at_most_the_running_trial(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    argv = [EXE, "tune", "--trials", "2", "--epochs", "1", "--data", str(kaggle_dir), "--out", str(out),
            "--no-progress"]  # fmt: skip
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = random.Random(2)
    for attempt in range(3):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if attempt == 1:  # once, after a trial has completed
            deadline = time.monotonic() + 120
            while _completed_trials(out) < 1 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            time.sleep(rng.uniform(3.0, 8.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    completed = _completed_trials(out)
    assert completed >= 1
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    # Completed trials are not trained again; the ones killed while running are run again.
    assert done.stdout.count(": trial ") == 2 - completed
    table = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    assert len(table) == 2 and set(table["status"]) == {"COMPLETED"}
    assert json.loads((out / "best_hparams.json").read_text())
