"""A member killed in the middle of its fit resumes after its last finished epoch (issue 29, item 6)
and ends with the record and weights of the fit that was never interrupted."""

from __future__ import annotations

import csv
import signal
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from lenet_tf import ensemble, interrupts, training
from lenet_tf.data import DigitData, Split
from lenet_tf.ensemble import MEMBERS_DIR, Ensemble, train_members
from lenet_tf.models import mlp
from lenet_tf.training import FitResult, TrainConfig, member_callbacks

# Found to stop early on these 200 digits: best epoch 3, early stop at 4 of 6 (the tests check it),
# with dropout (seed generator states), a plateau schedule and early stopping (callback states).
CONFIG = TrainConfig(epochs=6, patience=1, learning_rate=0.01, lr_schedule="plateau")
SEED = 2
BACKUP_DIR = "backup"  # a killed member's backup: members/backup/member_XX
# A Ctrl-C that lands in a finalizer is recorded, not raised: the fit then stops at the epoch's end.
FINALIZER = types.SimpleNamespace(f_code=types.SimpleNamespace(co_name="remove", co_filename="/x/weakref.py"))


def builder() -> keras.Sequential:
    return mlp(0.3)


@pytest.fixture(scope="module")
def split(sample: DigitData) -> Split:
    images, labels = sample.train_images, sample.train_labels
    return Split(images[:200], labels[:200], images[200:300], labels[200:300])


@pytest.fixture(scope="module")
def reference(split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ensemble, FitResult]:
    """The member trained without interruption."""
    run = tmp_path_factory.mktemp("reference")
    members, (result,) = _train(split, run)
    assert (result.best_epoch, result.epochs_run) == (3, 4)  # what the kills below are placed against
    return run, members, result


class Epochs(keras.callbacks.Callback):
    """Notes the epochs a fit runs (0-based) and calls ``act(epoch, batch)`` after each batch."""

    def __init__(self, act: Callable[[int, int], None] = lambda epoch, batch: None):
        super().__init__()
        self.act, self.run = act, []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.run.append(epoch)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.act(self.run[-1], batch)


def _with(monkeypatch: pytest.MonkeyPatch, watcher: Epochs) -> None:
    """Every member's fit gets ``watcher`` among its callbacks (as the run's own come in)."""
    real = training.train  # not ensemble's, which an earlier call may have replaced

    def train(*args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        return real(*args, callbacks=[*(callbacks or []), watcher], **kwargs)

    monkeypatch.setattr(ensemble, "train", train)


def _kill_in_epoch(epoch: int) -> Callable[[int, int], None]:
    def act(now: int, batch: int) -> None:
        if now == epoch and batch >= 2:  # (batch: the last of a call's steps)
            raise KeyboardInterrupt  # as a Ctrl-C raised in the middle of a step

    return act


def _ctrl_c_swallowed_in_epoch(epoch: int) -> Callable[[int, int], None]:
    def act(now: int, batch: int) -> None:
        if now == epoch and batch == 2:
            interrupts._on_sigint(signal.SIGINT, FINALIZER)

    return act


def _train(split: Split, directory: Path, **options: Any) -> tuple[Ensemble, list[FitResult]]:
    """The run's one member, trained (or loaded) in ``directory``."""
    return train_members(
        builder, split, members=1, directory=directory, seed=SEED, config=CONFIG, progress=False, **options
    )


def _csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / MEMBERS_DIR / "member_01_history.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _assert_same_fit(result: FitResult, model: keras.Model, ref: FitResult, ref_model: keras.Model) -> None:
    """The same record (epochs exactly, figures up to float rounding) and the same weights."""
    assert (result.epochs_run, result.best_epoch) == (ref.epochs_run, ref.best_epoch)
    assert result.history.keys() == ref.history.keys()
    for key, values in ref.history.items():
        assert len(result.history[key]) == len(values) == ref.epochs_run, key
        np.testing.assert_allclose(result.history[key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    assert result.val_accuracy == pytest.approx(ref.val_accuracy, abs=1e-6)
    assert result.train_accuracy == pytest.approx(ref.train_accuracy, abs=1e-6)
    for got, want in zip(model.get_weights(), ref_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _assert_same_member(run: Path, members: Ensemble, result: FitResult, reference: tuple) -> None:
    ref_run, ref_members, ref = reference
    _assert_same_fit(result, members.members[0], ref, ref_members.members[0])
    rows, ref_rows = _csv_rows(run), _csv_rows(ref_run)
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in ref_rows]  # every epoch, once
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], [float(r["val_loss"]) for r in ref_rows], 1e-5)
    assert not (run / MEMBERS_DIR / BACKUP_DIR).exists()  # the backup goes with the finished member


@pytest.mark.parametrize(
    ("act", "finished", "resumed_epochs"),
    [
        (_kill_in_epoch(3), 3, [3]),  # killed in epoch 4: resumes at 4, which beats the best of 3: stops
        (_ctrl_c_swallowed_in_epoch(3), 4, []),  # interrupted as early stopping ends the fit: nothing is left
        (_kill_in_epoch(2), 2, [2, 3]),  # killed in epoch 3: resumes at 3
    ],
    ids=["killed-after-3", "interrupted-at-stop", "killed-after-2"],
)
def test_a_killed_member_resumes_after_its_last_finished_epoch(
    tmp_path: Path, split: Split, reference: tuple, monkeypatch: pytest.MonkeyPatch, act: Any, finished: int,
    resumed_epochs: list[int],
) -> None:  # fmt: skip
    monkeypatch.setitem(interrupts._requested, "sigint", False)  # what a recorded Ctrl-C leaves is undone after
    killed = Epochs(act)
    _with(monkeypatch, killed)
    with pytest.raises(KeyboardInterrupt):
        _train(split, tmp_path)
    assert len(_csv_rows(tmp_path)) == finished  # the epochs the killed fit finished
    assert (tmp_path / MEMBERS_DIR / BACKUP_DIR / "member_01").is_dir()
    assert not (tmp_path / MEMBERS_DIR / "member_01.json").exists()

    again = Epochs()
    _with(monkeypatch, again)
    with interrupts.handle_ctrl_c():  # as the command line runs: a new command, no Ctrl-C recorded yet
        members, (result,) = _train(split, tmp_path)
    assert again.run == resumed_epochs  # from the epoch after the last finished one, not from 0
    _assert_same_member(tmp_path, members, result, reference)


def test_a_backup_that_does_not_hold_together_is_dropped_and_the_member_trains_afresh(
    tmp_path: Path, split: Split, reference: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / MEMBERS_DIR / BACKUP_DIR / "member_01"  # killed between Keras' files and the state
    broken.mkdir(parents=True)
    (broken / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    watcher = Epochs()
    _with(monkeypatch, watcher)
    members, (result,) = _train(split, tmp_path)
    assert watcher.run == [0, 1, 2, 3]
    _assert_same_member(tmp_path, members, result, reference)


def test_a_run_without_backups_resumes_as_before(tmp_path: Path, split: Split, reference: tuple) -> None:
    """A finished member (an older version's run has no backup folder) is loaded, not trained."""
    ref_run, _, ref = reference
    (tmp_path / MEMBERS_DIR).mkdir()
    for name in ("member_01.keras", "member_01.json", "member_01_history.csv"):
        (tmp_path / MEMBERS_DIR / name).write_bytes((ref_run / MEMBERS_DIR / name).read_bytes())
    seen = []
    _, (result,) = _train(split, tmp_path, on_member=lambda index, result, resumed: seen.append(resumed))
    assert seen == [True] and result == ref


def test_the_flagship_options_and_the_tf_data_pipeline_resume_too(tmp_path: Path, split: Split) -> None:
    """Augmentation, cosine decay, the last weights kept, a weight average, label smoothing, several
    steps per call, and tf.data, whose shuffle order Keras draws anew with each iterator it makes."""
    config = TrainConfig(
        epochs=3, input_pipeline="tfdata", augment=True, lr_schedule="cosine", restore_best=False,
        steps_per_execution=2, label_smoothing=0.1, ema_momentum=0.9,
    )  # fmt: skip

    def fit(*callbacks: keras.callbacks.Callback) -> tuple[keras.Model, FitResult]:
        return training.train(builder, split, config=config, seed=SEED, progress=False, callbacks=list(callbacks))

    ref_model, ref = fit()  # no backup at all: the backup changes nothing in a fit that is not killed
    with pytest.raises(KeyboardInterrupt):
        fit(*member_callbacks(tmp_path, "member_01", config), Epochs(_kill_in_epoch(1)))
    again = Epochs()
    model, result = fit(*member_callbacks(tmp_path, "member_01", config), again)
    assert again.run == [1, 2]
    _assert_same_fit(result, model, ref, ref_model)


def test_the_private_keras_parts_the_backup_uses_are_there() -> None:
    """Named here so that a Keras upgrade that removes them fails in one place (as test_dependencies
    does for keras-tuner): where the weight average is, and the epoch a fit starts at, which Keras'
    own BackupAndRestore sets (the backup sets it past the end when early stopping had ended the fit)."""
    assert keras.callbacks.SwapEMAWeights(swap_on_epoch=True)._ema_weights_in_model is False
    assert builder()._initial_epoch is None
    assert keras.__version__.startswith("3.")
