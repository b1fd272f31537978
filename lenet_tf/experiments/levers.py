"""The flagship ensemble's levers, measured one at a time (``make levers``).

Each lever is one training configuration of one member on the deployment split (70/30), trained
through the package's own :func:`lenet_tf.training.train`; the table reports its best validation
accuracy, the epoch it came at, its wall time and the median seconds per epoch. Finished levers
are saved as they finish (``levers/<name>.json``), so a rerun resumes. ``--epochs`` caps every
lever, so a cheap look (a few epochs) and the full measurement share one command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .. import options
from ..data import DigitData, Split
from ..ensemble import FLAGSHIP, flagship_train_config
from ..errors import LenetError
from ..models import get_builder
from ..options import complete_train_record
from ..pipeline import prepare_split
from ..rundir import environment, markdown_table, write_json, write_text
from ..seeds import member_seed
from ..training import TrainConfig, train, train_together
from .executors import executor_from_args
from .runner import Experiment, ExperimentResult, Item, Progress, Records, read_item, run_experiment

LEVERS_DIR = "levers"
LEVERS_PROTOCOL = "holdout"

# The levers' common settings: the flagship's before its label smoothing (issue 19's levers, the
# last rows, are each one change from it), one training step per call (the pace levers come after).
FLAGSHIP_TRAIN = flagship_train_config()
BEFORE_SMOOTHING = replace(FLAGSHIP_TRAIN, label_smoothing=0.0)
BASE_TRAIN = replace(BEFORE_SMOOTHING, steps_per_execution=1)
FLAGSHIP_MODEL = str(FLAGSHIP["model"])
EMA_MOMENTUM = 0.999


@dataclass(frozen=True)
class Lever:
    """One measured configuration: a registered model and how it is trained."""

    name: str
    description: str
    model: str
    train: TrainConfig
    together: int = 1  # members trained at once in one graph (training.train_together)


# From the reference protocol to the flagship member, one change at a time, then the input
# pipeline options at the flagship's settings (same accuracy expected; the time is the point).
LEVERS: tuple[Lever, ...] = (
    Lever("classic-reference", "classic LeNet-5, reference protocol (batch 32, patience 5)", "classic", TrainConfig()),
    Lever("wide-reference", "wide LeNet-5, reference protocol (Adam 1e-3, batch 32, patience 5)", "lenet5-wide",
          TrainConfig()),
    Lever("wide-b128", f"+ batch 128, Adam 2e-3, {BASE_TRAIN.epochs} epochs", "lenet5-wide",
          replace(BASE_TRAIN, augment=False, lr_schedule="constant")),
    Lever("wide-b128-cosine", "+ cosine learning-rate decay", "lenet5-wide", replace(BASE_TRAIN, augment=False)),
    Lever("wide-b128-plateau", "ReduceLROnPlateau instead of cosine", "lenet5-wide",
          replace(BASE_TRAIN, augment=False, lr_schedule="plateau")),
    Lever("wide-augment", "+ augmentation (shift, rotation, zoom)", "lenet5-wide", BASE_TRAIN),
    Lever("wider-augment", "wider LeNet-5 (32/64 filters, 256/128 units, dropout 0.3)", "lenet5-wider",
          BASE_TRAIN),
    Lever("wide-augment-tfdata", "wide + augmentation, tf.data pipeline (cache, shuffle, prefetch)", "lenet5-wide",
          replace(BASE_TRAIN, input_pipeline="tfdata")),
    Lever("bn-augment", "LeNet-5 with batch normalisation (32/64 filters, 256 units, dropout 0.3)", "lenet5-bn",
          BASE_TRAIN),
    Lever("wide-augment-spe8", "wide + augmentation, steps_per_execution 8", "lenet5-wide",
          replace(BASE_TRAIN, steps_per_execution=FLAGSHIP_TRAIN.steps_per_execution)),
    Lever("wide-augment-2in1", "wide + augmentation, 2 members trained at once in one graph (per member)",
          "lenet5-wide", BASE_TRAIN, together=2),
    Lever("bn-augment-spe8", "+ steps_per_execution 8: the flagship member until issue 19", FLAGSHIP_MODEL,
          BEFORE_SMOOTHING),
    # Issue 19's candidate levers, each one change from that member.
    Lever("bn-augment-smooth", "+ label smoothing 0.1: the flagship member (make ensemble)", FLAGSHIP_MODEL,
          FLAGSHIP_TRAIN),
    # Polyak averaging over ~1,000 steps (about 5 of the 15 epochs at batch 128), SWA-like.
    Lever("bn-augment-ema", f"bn-augment-spe8 + weight average (EMA, momentum {EMA_MOMENTUM})", FLAGSHIP_MODEL,
          replace(BEFORE_SMOOTHING, ema_momentum=EMA_MOMENTUM)),
    Lever("deep-augment-spe8", "deep LeNet-5 (two 3x3 convolutions per 5x5, strided convolutions, dropout 0.4), "
          "bn-augment-spe8's training", "lenet5-deep", BEFORE_SMOOTHING),
)  # fmt: skip


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of every epoch (training and validation together)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _same_lever(saved: dict[str, Any], lever: Lever) -> bool:
    """Whether a saved row measured exactly this lever (so it need not be trained again)."""
    return (
        saved.get("model") == lever.model
        and complete_train_record(saved.get("train") or {}) == lever.train.to_dict()
        and saved.get("together", 1) == lever.together
    )


def measure_levers(
    out: str | Path,
    *,
    data: DigitData | None = None,
    source: str | Path | None = None,
    names: tuple[str, ...] | None = None,
    epochs: int | None = None,
    max_train: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: Any = None,
) -> ExperimentResult:
    """Train every lever (or those in ``names``) once, each an item of the shared resumable runner
    (run by ``executor``: serial, or Ray tasks), and write ``levers.json`` / ``levers.md``; return
    the rows (one per lever)."""
    levers = _chosen_levers(names, epochs)
    # The holdout protocol's split: levers choose the recipe, so they train and validate on its 90 %
    # and never read the 10 % that `lenet-tf ensemble --split holdout` reports the chosen recipe on.
    job = prepare_split(protocol=LEVERS_PROTOCOL, split_seed=0, max_train=max_train, data=data, source=source,
                        echo=echo)  # fmt: skip
    split = job.split
    plan = [Item(f"{LEVERS_DIR}/{lever.name}", {"lever": lever}) for lever in levers]

    def load(item: Item, directory: Path) -> dict[str, Any] | None:
        saved = read_item(item, directory)  # a lever since changed is measured again
        return saved if saved is not None and _same_lever(saved, item["lever"]) else None

    def write_outputs(records: Records, done: Progress) -> tuple[dict[str, Any], dict[str, Path]]:
        rows = [record | {"description": item["lever"].description} for item, record in records]
        summary = {"data": job.data.source, "split": split.sizes(), "levers": rows, "environment": environment()}
        paths = {"levers.json": out / "levers.json", "levers.md": out / "levers.md"}
        write_json(paths["levers.json"], summary)
        write_text(paths["levers.md"], levers_markdown(summary, done.note("levers")))
        return summary, paths

    out = Path(out)
    experiment = Experiment(
        "levers", plan, lambda item, _: _measure(item["lever"], split, seed, progress), write_outputs, load_item=load,
        on_item=lambda item, row, _: echo(f"{item['lever'].name}: val accuracy {row['val_accuracy']:.4f}"
                                          f" in {row['seconds']:.0f}s"), unit="lever",
    )  # fmt: skip
    config = {"kind": "levers", "data_fingerprint": job.data.fingerprint(), "max_train": max_train, "seed": seed,
              "protocol": LEVERS_PROTOCOL}  # fmt: skip
    result = run_experiment(experiment, out, config, force=force, progress=progress, echo=echo, executor=executor)
    echo(f"results: {out}/levers.md, levers.json")
    return result


def _chosen_levers(names: tuple[str, ...] | None, epochs: int | None) -> list[Lever]:
    unknown = set(names or ()) - {lever.name for lever in LEVERS}
    if unknown:
        raise LenetError(f"unknown lever {sorted(unknown)[0]!r}; choose from {', '.join(lv.name for lv in LEVERS)}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise LenetError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    levers = [lever for lever in LEVERS if names is None or lever.name in names]
    if epochs is not None:
        levers = [replace(lv, train=replace(lv.train, epochs=min(epochs, lv.train.epochs))) for lv in levers]
    return levers


def _measure(lever: Lever, split: Split, seed: int, progress: bool) -> dict[str, Any]:
    """Train one lever's member(s) and return its row."""
    timer = EpochTimer()
    builder = get_builder(lever.model)
    if lever.together == 1:
        model, result = train(builder, split, config=lever.train, seed=member_seed(seed, 0), progress=progress,
                              callbacks=[timer])  # fmt: skip
        results = [result]
    else:
        seeds = [member_seed(seed, i) for i in range(lever.together)]
        models, results = train_together(
            builder, split, members=lever.together, config=lever.train, seeds=seeds, progress=progress,
            callbacks=[timer],
        )  # fmt: skip
        model = models[0]
    # Per member: a joint training's time is shared by its members.
    return {
        "name": lever.name,
        "model": lever.model,
        "parameters": model.count_params(),
        "train": lever.train.to_dict(),
        "together": lever.together,
        "val_accuracy": float(np.mean([r.val_accuracy for r in results])),
        "best_epoch": results[0].best_epoch,
        "epochs_run": results[0].epochs_run,
        "seconds": round(sum(r.seconds for r in results) / len(results), 1),
        # The first epoch also compiles the graph: the median of the others is the pace.
        "seconds_per_epoch": round(float(np.median(timer.seconds[1:] or timer.seconds)) / lever.together, 2),
    }


def levers_markdown(summary: dict[str, Any], unfinished: str = "") -> str:
    """The levers table as Markdown (``unfinished``: the runner's "k of N finished so far" note)."""
    header = ["lever", "what changes", "params", "val acc", "best epoch / run", "seconds", "s / epoch"]
    rows = [
        [
            r["name"],
            r["description"],
            f"{r['parameters']:,}",
            f"{r['val_accuracy']:.4f}",
            f"{r['best_epoch']} / {r['epochs_run']}",
            f"{r['seconds']:.0f}",
            f"{r['seconds_per_epoch']:.2f}",
        ]
        for r in summary["levers"]
    ]
    sizes = summary["split"]
    return (
        "# Levers of the flagship ensemble (one member each)\n\n"
        + (f"{unfinished}.\n\n" if unfinished else "")
        + f"Data: {summary['data']}; holdout protocol: {sizes['train']:,} train / {sizes['val']:,} validation;"
        f" the {sizes['test']:,} held-out digits are never read here (they score the chosen recipe once,"
        " `lenet-tf ensemble --split holdout`); seed 0.\n\n" + markdown_table(header, rows)
    )


def build_parser() -> options.ScriptParser:
    """The module's command line, from its option classes (bounds, defaults and help declared once)."""
    groups = [(options.DataOptions, ()), (options.LeversOptions, ()), (options.OutputOptions, ("out",)),
              (options.ProgressOptions, ()), (options.ExecutorOptions, ())]  # fmt: skip
    return options.ScriptParser(
        "levers", groups, prog="python -m lenet_tf.experiments.levers", description=__doc__.split("\n\n")[0]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m lenet_tf.experiments.levers --data ZIP --out DIR [--only a,b] [--epochs N]``."""
    import sys

    args = build_parser().parse_checked(argv)  # a bad value: one line, exit status 2
    names = tuple(n.strip() for n in args.only.split(",")) if args.only else None
    try:
        executor = executor_from_args(args)
        measure_levers(
            args.out, source=args.data, names=names, epochs=args.epochs, max_train=args.max_train,
            force=args.force, progress=not args.no_progress, executor=executor,
        )  # fmt: skip
    except LenetError as exc:
        print(f"levers: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
