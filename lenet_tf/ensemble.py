"""Ensembles of LeNets: train members one by one (each saved as soon as it finishes, so an
interrupted run resumes), average their probabilities, save and load them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from .data import IMAGE_SIDE, Split
from .errors import LenetError
from .models import load_saved_model
from .options import FLAGSHIP, from_dests  # the recipe is data, declared with the options it sets
from .rundir import CONFIG_FILE, read_json, save_model, write_json
from .seeds import member_seed
from .training import FitResult, TrainConfig, member_callbacks, predict_proba, refit, train

# `make ensemble` / `lenet-tf ensemble --recipe flagship`: what careful training makes of small
# LeNets on a 2-core CPU (measured in the README's flagship section and BENCHMARKS.md).


def flagship_train_config() -> TrainConfig:
    """The flagship's :class:`TrainConfig` (its FLAGSHIP entries that are fit options)."""
    return TrainConfig(**from_dests(TrainConfig, FLAGSHIP))


MEMBERS_DIR = "members"
REFIT_DIR = "refit"  # members retrained on all labeled data


def member_stem(index: int) -> str:
    """File stem of member ``index`` (0-based): ``member_01`` for the first."""
    return f"member_{index + 1:02d}"


class Ensemble:
    """Members whose class probabilities are averaged (soft voting)."""

    def __init__(self, members: Sequence[keras.Model], *, augment: TrainConfig | None = None):
        """``augment``: the members' training configuration, whose augmentation strengths
        test-time augmentation uses (None: the package's defaults)."""
        if not members:
            raise LenetError("an ensemble needs at least one member")
        self.members = list(members)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.members)

    def member_probabilities(self, images: np.ndarray, batch_size: int = 1024, *, tta: int = 0) -> np.ndarray:
        """(members, N, 10) probabilities for uint8 (N, 28, 28) images; ``tta`` augmented copies
        averaged in per member (test-time augmentation, see :func:`lenet_tf.training.predict_proba`)."""
        return np.stack(
            [
                predict_proba(m, images, batch_size, tta=tta, seed=i, augment=self.augment)
                for i, m in enumerate(self.members)
            ]
        )

    def predict_proba(self, images: np.ndarray, batch_size: int = 1024, *, tta: int = 0) -> np.ndarray:
        """Mean member probabilities (N, 10)."""
        return self.member_probabilities(images, batch_size, tta=tta).mean(axis=0)

    def predict(self, images: np.ndarray, batch_size: int = 1024, *, tta: int = 0) -> np.ndarray:
        """Predicted digits (N,)."""
        return np.argmax(self.predict_proba(images, batch_size, tta=tta), axis=1)

    def as_model(self) -> keras.Model:
        """The ensemble as one Keras model: the members' probabilities averaged (soft voting, as
        :meth:`predict_proba` without TTA). It takes Kaggle's 0–255 pixels, (N, 28, 28, 1), since every
        member scales its input itself; one member is returned as it is."""
        if len(self.members) == 1:
            return self.members[0]
        inputs = keras.Input(shape=(IMAGE_SIDE, IMAGE_SIDE, 1), name="pixels")
        for index, member in enumerate(self.members):
            member.name = member_stem(index)  # a functional model needs unique layer names
        outputs = keras.layers.Average(name="average")([member(inputs) for member in self.members])
        return keras.Model(inputs, outputs, name=f"ensemble_of_{len(self.members)}")

    def export(self, path: str | Path) -> Path:
        """Save :meth:`as_model` as one ``.keras`` file that ``keras.saving.load_model`` opens anywhere
        (a notebook, Kaggle) without this package."""
        return save_model(self.as_model(), path)

    def save(self, directory: str | Path) -> Path:
        """Save every member as ``member_XX.keras`` under ``directory``."""
        directory = Path(directory)
        for index, model in enumerate(self.members):
            save_model(model, directory / f"{member_stem(index)}.keras")
        return directory

    @classmethod
    def load(cls, directory: str | Path, limit: int | None = None) -> Ensemble:
        """Load the members saved in ``directory``: a run directory (its ``refit/`` members when
        the run retrained them on all labeled data, else its ``members/``) or a members folder.
        All the members the run records are loaded (the first ``limit``), or a LenetError names a missing one."""
        augment = _recorded_augmentation(Path(directory))
        return cls([load_saved_model(path) for path in member_paths(directory, limit)], augment=augment)


_MEMBER_FILE = re.compile(r"member_(\d+)\.(keras|json)")


def member_paths(directory: str | Path, limit: int | None = None) -> list[Path]:
    """The ``member_XX.keras`` files :meth:`Ensemble.load` loads from ``directory`` (the first ``limit``).

    A member counts as recorded when its number appears among the folder's files (``member_XX.json``
    outlives a deleted model) or within the run's metrics.json / config.json; every recorded one must
    be there: a submission from fewer members than the run's would be another ensemble under its name.
    """
    directory = Path(directory)
    if directory.name in (MEMBERS_DIR, REFIT_DIR):  # a run's members folder, given itself
        run, folder = directory.parent, directory
    else:
        run, folder = directory, _member_folder(directory)
    count = max(_highest_number(folder), _recorded_count(run, folder) if folder != run else 0)
    if not count:
        raise LenetError(f"{folder}: no saved members (member_XX.keras) there")
    if limit and limit > count:  # silently using fewer would mislabel the submission
        raise LenetError(f"{folder}: holds {count} members; {limit} were asked for")
    paths = [folder / f"{member_stem(index)}.keras" for index in range(limit or count)]
    missing = next((path for path in paths if not path.is_file()), None)
    if missing is not None:
        raise LenetError(
            f"{missing}: no such file, but the run has {count} members; restore it or retrain the run"
            " (a submission from fewer would not be this run's)"
        )
    return paths


def _member_folder(run: Path) -> Path:
    """``refit/`` when the run's submission came from refit members (recorded in metrics.json, or a
    refit folder as full as ``members/``: an unfinished refit is not used), else ``members/`` when
    there is one, else ``run`` itself (a folder of members)."""
    trained, refitted = _highest_number(run / MEMBERS_DIR), _highest_number(run / REFIT_DIR)
    if _recorded_count(run, run / REFIT_DIR) or (refitted and refitted >= trained):
        return run / REFIT_DIR
    return run / MEMBERS_DIR if (run / MEMBERS_DIR).is_dir() else run


def _highest_number(folder: Path) -> int:
    """The highest member number among ``folder``'s member_XX.keras and member_XX.json (0: none)."""
    if not folder.is_dir():
        return 0
    numbers = (_MEMBER_FILE.fullmatch(path.name) for path in folder.iterdir())
    return max((int(match[1]) for match in numbers if match), default=0)


def _recorded_count(run: Path, folder: Path) -> int:
    """How many members of ``folder`` (``members/`` or ``refit/``) the run's metrics.json and
    config.json record (0: none recorded)."""
    key = "refit_members" if folder.name == REFIT_DIR else "members"
    counts = [0]
    for name in ("metrics.json", CONFIG_FILE):
        path = run / name
        try:
            record = read_json(path) if path.is_file() else {}
        except UnicodeDecodeError as exc:  # read_json reports malformed JSON, not bytes that are not text
            raise LenetError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        value = record.get(key) if isinstance(record, dict) else None
        if isinstance(value, list):
            counts.append(len(value))
        elif isinstance(value, int) and not isinstance(value, bool) and key == "members":
            counts.append(value)
    return max(counts)


def _recorded_augmentation(directory: Path) -> TrainConfig | None:
    """The augmentation strengths a run directory's config.json records (None without one), so
    test-time augmentation of loaded members matches their training."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        return None
    train = read_json(path).get("train", {})
    names = ("augment_shift", "augment_rotation", "augment_zoom")
    try:
        return TrainConfig(**{name: train[name] for name in names if name in train}).validate()
    except (TypeError, LenetError) as exc:
        raise LenetError(f"{path}: bad augmentation settings ({exc})") from exc


def _member_loop(
    count: int,
    member_dir: Path,
    make_member: Callable[[int], tuple[keras.Model, FitResult]],
    *,
    desc: str,
    progress: bool,
    on_member: Callable[[int, FitResult, bool], None] | None,
    augment: TrainConfig,
) -> tuple[Ensemble, list[FitResult]]:
    """Load or make ``count`` members in ``member_dir``: a member whose ``.keras`` and metrics JSON
    are both there is loaded, so a rerun after an interruption continues where it stopped."""
    models: list[keras.Model] = []
    results: list[FitResult] = []
    bar = tqdm(range(count), desc=desc, unit="member", disable=not progress)
    for index in bar:
        model_path = member_dir / f"{member_stem(index)}.keras"
        metrics_path = member_dir / f"{member_stem(index)}.json"
        resumed = model_path.is_file() and metrics_path.is_file()
        if resumed:
            model = load_saved_model(model_path)
            result = FitResult(**read_json(metrics_path))
        else:
            model, result = make_member(index)
            # The model first, the metrics last: metrics present means the member is complete.
            save_model(model, model_path)
            write_json(metrics_path, result.to_dict())
        models.append(model)
        results.append(result)
        if result.val_accuracy is not None:
            bar.set_postfix(val_acc=f"{result.val_accuracy:.4f}")
        if on_member is not None:
            on_member(index, result, resumed)
    return Ensemble(models, augment=augment), results


def _check_members(members: int) -> None:
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise LenetError(f"members must be an integer ≥ 1, got {members!r}")


def train_members(
    builder: Callable[[], keras.Model],
    split: Split,
    *,
    members: int,
    directory: str | Path,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
    on_member: Callable[[int, FitResult, bool], None] | None = None,
) -> tuple[Ensemble, list[FitResult]]:
    """Train ``members`` models in ``directory/members`` and return them as an ensemble.

    A member whose ``.keras`` and metrics JSON are already there is loaded, not retrained, so a
    rerun after an interruption continues where it stopped. ``on_member(index, result, resumed)``
    is called after each member.
    """
    _check_members(members)
    config.validate()

    member_dir = Path(directory) / MEMBERS_DIR

    def make(index: int) -> tuple[keras.Model, FitResult]:
        logs = member_callbacks(member_dir, member_stem(index), config)  # with a backup: resumes mid-fit
        return train(builder, split, config=config, seed=member_seed(seed, index), progress=progress, callbacks=logs)

    return _member_loop(
        members, member_dir, make, desc="members", progress=progress, on_member=on_member, augment=config
    )


def refit_members(
    builder: Callable[[], keras.Model],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: Sequence[int],
    directory: str | Path,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
    on_member: Callable[[int, FitResult, bool], None] | None = None,
) -> tuple[Ensemble, list[FitResult]]:
    """Retrain one member per entry of ``epochs`` on all of ``images`` (no validation), member i
    for ``epochs[i]`` epochs, into ``directory/refit``; resumable like :func:`train_members`."""
    _check_members(len(epochs))
    config.validate()

    member_dir = Path(directory) / REFIT_DIR

    def make(index: int) -> tuple[keras.Model, FitResult]:
        return refit(
            builder, images, labels, epochs=epochs[index], config=config, seed=member_seed(seed, index),
            progress=progress, callbacks=member_callbacks(member_dir, member_stem(index), config),
        )  # fmt: skip

    return _member_loop(
        len(epochs), member_dir, make, desc="refit", progress=progress, on_member=on_member, augment=config
    )
