"""Benchmarks: speed and memory measured as ratios within one run (``make bench``).

* training throughput (images/s) of each registered model through the package's training path
  (:func:`lenet_tf.training.fit`) against a plain ``model.fit`` call with the same arguments (the
  same arrays, training batch size, validation batch size and shuffling), the two measured
  alternately epoch by epoch, median after a warm-up epoch: the ratio is what the package adds
  around ``model.fit`` (seeding, its callbacks, reading the history) plus the machine's noise;
* the flagship member's training pace under its input-pipeline options (numpy arrays, more steps
  per call, tf.data, several members in one graph), alternated round by round, as ratios;
* inference throughput of a 10-member ensemble on 28,000 images;
* data load time (CSV/zip parsing and validation);
* end-to-end stages of a small ensemble job (load, train per member, predict, write) and the
  peak resident memory of that process.

Results: ``<out>/benchmark.json`` and ``<out>/benchmark.md`` with the machine information.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DigitData, load_data, prepare, split_data, subsample
from ..ensemble import FLAGSHIP, Ensemble, flagship_train_config
from ..errors import LenetError
from ..models import BUILDERS, get_builder
from ..options import BenchmarkOptions, DataOptions, ScriptParser
from ..rundir import environment, markdown_table, write_json, write_text
from ..training import PREDICT_BATCH, TrainConfig, compiled_trainer, fit, fit_inputs, members_together, set_seed


def training_throughput(data: DigitData, model: str, *, images: int, epochs: int, batch_size: int) -> dict[str, Any]:
    """Images/s of the package's fit versus plain ``model.fit``, alternating, median of ``epochs``.

    Like for like: the plain call gets the arguments the package's numpy path passes to
    ``model.fit`` (validation at :data:`~lenet_tf.training.PREDICT_BATCH`, shuffling), so the two
    sides differ only by what :func:`~lenet_tf.training.fit` adds: seeding, the early-stopping and
    interrupt callbacks, reading the history.
    """
    split = split_data(subsample(data, min(len(data.train_labels), images * 2)), "deployment")
    x_train, y_train = prepare(split.x_train[:images]), split.y_train[:images]
    x_val, y_val = prepare(split.x_val), split.y_val
    builder = get_builder(model)
    set_seed(0)
    ours, plain = builder(), builder()
    config = TrainConfig(epochs=1, batch_size=batch_size)
    plain_options = {"batch_size": batch_size, "validation_batch_size": PREDICT_BATCH, "shuffle": True}
    rates: dict[str, list[float]] = {"package": [], "plain": []}
    for epoch in range(epochs + 1):  # epoch 0 warms up both (graph tracing)
        start = time.perf_counter()
        fit(ours, x_train, y_train, x_val, y_val, config=config, seed=epoch, progress=False)
        package_seconds = time.perf_counter() - start
        start = time.perf_counter()
        plain.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=1, verbose=0, **plain_options)
        plain_seconds = time.perf_counter() - start
        if epoch:
            rates["package"].append(len(x_train) / package_seconds)
            rates["plain"].append(len(x_train) / plain_seconds)
    package, reference = statistics.median(rates["package"]), statistics.median(rates["plain"])
    return {
        "model": model,
        "train_images": len(x_train),
        "val_images": len(x_val),
        "batch_size": batch_size,
        "val_batch_size": PREDICT_BATCH,
        "epochs_measured": epochs,
        "package_images_per_s": package,
        "plain_images_per_s": reference,
        "ratio_package_to_plain": package / reference,
        # Every epoch's ratio: their spread is the machine's noise on this comparison.
        "epoch_ratios": [ours_ / theirs for ours_, theirs in zip(rates["package"], rates["plain"], strict=True)],
    }


# The flagship's pace options, each against one step per call on numpy arrays (the first).
PACE_OPTIONS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("numpy, 1 step per call", {"steps_per_execution": 1}, 1),
    ("numpy, steps_per_execution 8", {"steps_per_execution": 8}, 1),
    ("tf.data (cache, shuffle, prefetch)", {"steps_per_execution": 1, "input_pipeline": "tfdata"}, 1),
    ("2 members in one graph", {"steps_per_execution": 1}, 2),
    ("2 members in one graph, steps_per_execution 8", {"steps_per_execution": 8}, 2),
)


def flagship_pace(data: DigitData, *, images: int, epochs: int) -> list[dict[str, Any]]:
    """Member-images/s of the flagship member's training (augmentation, batch 128) under each of
    :data:`PACE_OPTIONS`, their epochs alternated round by round (median after a warm-up round),
    training only; a joint graph of k members counts k member-images per image."""
    split = split_data(subsample(data, min(len(data.train_labels), images * 2)), "deployment")
    x, y = prepare(split.x_train[:images]), split.y_train[:images]
    # Without its label smoothing, which a joint graph cannot apply: the loss's cost is negligible
    # beside the convolutions, and every row then trains the same arithmetic.
    base = replace(flagship_train_config(), label_smoothing=0.0)
    runners = []
    for _label, changes, members in PACE_OPTIONS:
        config = replace(base, **changes)
        if members == 1:
            set_seed(0)
            trainer = compiled_trainer(get_builder(str(FLAGSHIP["model"]))(), config, seed=0)
            inputs, targets, options = fit_inputs(x, y, config, 0, training=True)
        else:
            trainer, _ = members_together(get_builder(str(FLAGSHIP["model"])), config, list(range(members)))
            inputs, targets, options = x, [y] * members, {"batch_size": config.batch_size, "shuffle": True}
        runners.append((trainer, inputs, targets, options))
    rates: list[list[float]] = [[] for _ in PACE_OPTIONS]
    for round_ in range(epochs + 1):  # round 0 warms every graph up (tracing)
        for index, (trainer, inputs, targets, options) in enumerate(runners):
            start = time.perf_counter()
            trainer.fit(inputs, targets, epochs=1, verbose=0, **options)
            if round_:
                rates[index].append(PACE_OPTIONS[index][2] * len(x) / (time.perf_counter() - start))
    first = statistics.median(rates[0])
    return [
        {"option": label, "members_per_graph": members, "member_images_per_s": statistics.median(r),
         "ratio_to_first": statistics.median(r) / first}
        for (label, _changes, members), r in zip(PACE_OPTIONS, rates, strict=True)
    ]  # fmt: skip


def inference_throughput(members: int = 10, images: int = 28_000, repeats: int = 3) -> dict[str, Any]:
    """Images/s of an ``members``-member optimized ensemble predicting ``images`` digits."""
    set_seed(0)
    ensemble = Ensemble([get_builder("optimized")() for _ in range(members)])
    batch = np.random.default_rng(0).integers(0, 256, size=(images, 28, 28), dtype=np.uint8)
    ensemble.predict(batch[:1024])  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        ensemble.predict(batch)
        seconds.append(time.perf_counter() - start)
    best = statistics.median(seconds)
    return {"members": members, "images": images, "seconds": best, "images_per_s": images / best}


def pipeline_stages(source: str, *, members: int, max_train: int, epochs: int) -> dict[str, Any]:
    """Run a small ensemble job in a child process; its stage timings and peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "lenet_tf.cli", "ensemble", "--data", source, "--members", str(members),
                "--max-train", str(max_train), "--epochs", str(epochs), "--out", f"{tmp}/run",
                "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
        wall = time.perf_counter() - start
        metrics = json.loads(Path(tmp, "run", "metrics.json").read_text())
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {
        "members": members,
        "max_train": max_train,
        "epochs": epochs,
        "wall_seconds": wall,
        "stages_seconds": metrics["timing_seconds"],
        "member_seconds": [m["seconds"] for m in metrics["members"]],
        "peak_rss_mib": peak_kib / 1024,
    }


def run(source: str | None, out: Path, *, quick: bool = False) -> dict[str, Any]:
    """All benchmarks; writes benchmark.json and benchmark.md under ``out``."""
    start = time.perf_counter()
    data = load_data(source)
    results: dict[str, Any] = {
        "data": {"source": data.source, "load_seconds": data.load_seconds, "train_rows": len(data.train_labels)},
        "environment": environment(),
        "quick": quick,
    }
    images, epochs = (2048, 2) if quick else (8192, 4)
    results["training"] = [
        training_throughput(data, name, images=images, epochs=epochs, batch_size=32) for name in BUILDERS
    ]
    results["flagship_pace"] = flagship_pace(data, images=1024 if quick else 8192, epochs=2 if quick else 4)
    results["inference"] = inference_throughput(members=10, images=2_800 if quick else 28_000)
    results["pipeline"] = pipeline_stages(
        "sample" if source is None else str(source), members=2, max_train=1000 if quick else 5000, epochs=2
    )
    results["seconds"] = time.perf_counter() - start
    write_json(out / "benchmark.json", results)
    write_text(out / "benchmark.md", benchmark_markdown(results))
    return results


def benchmark_markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        "# Benchmarks\n\n",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores; TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"Python {env['python']}; {env['timestamp']}.\n\n",
        f"Data: {results['data']['source']} — loaded and validated in {results['data']['load_seconds']:.2f} s.\n\n",
        "## Training throughput (images/s, median of alternated epochs after a warm-up)\n\n",
    ]
    lines.append(
        "Both sides run the same `model.fit` call (same arrays, batch sizes and shuffling); the package's"
        " side adds seeding, its early-stopping and interrupt callbacks and reading the history. A ratio"
        " away from 1 is that overhead plus this machine's noise (the epoch ratios' range shows the noise).\n\n"
    )
    rows = [
        [t["model"], t["batch_size"], t["val_batch_size"], t["train_images"],
         f"{t['package_images_per_s']:.0f}", f"{t['plain_images_per_s']:.0f}", f"{t['ratio_package_to_plain']:.2f}",
         _ratio_range(t["epoch_ratios"])]
        for t in results["training"]
    ]  # fmt: skip
    header = ["model", "batch", "val batch", "images", "package fit", "plain model.fit", "ratio", "epoch ratios"]
    lines.append(markdown_table(header, rows))
    pace = results.get("flagship_pace")
    if pace:
        lines.append(
            "\n## Flagship member training pace (augmentation, batch 128; member-images/s, alternated rounds)\n\n"
            + markdown_table(
                ["option", "member-images/s", "ratio"],
                [[p["option"], f"{p['member_images_per_s']:.0f}", f"{p['ratio_to_first']:.2f}"] for p in pace],
            )
        )
    inf = results["inference"]
    lines.append(
        f"\n## Inference\n\n{inf['members']}-member optimized ensemble on {inf['images']:,} images: "
        f"{inf['seconds']:.2f} s ({inf['images_per_s']:.0f} images/s).\n"
    )
    pipe = results["pipeline"]
    stages = pipe["stages_seconds"]
    lines.append(
        f"\n## Pipeline ({pipe['members']} members, {pipe['max_train']} labeled rows, {pipe['epochs']} epochs)\n\n"
        + markdown_table(
            ["wall", *stages, "peak RSS (MiB)"],
            [[f"{pipe['wall_seconds']:.1f}", *(f"{v:.1f}" for v in stages.values()), f"{pipe['peak_rss_mib']:.0f}"]],
        )
    )
    return "".join(lines)


def _ratio_range(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}"


def build_parser() -> ScriptParser:
    """The module's command line, from its option classes (bounds, defaults and help declared once)."""
    return ScriptParser(
        "benchmark", [(DataOptions, ()), (BenchmarkOptions, ())],
        prog="python -m lenet_tf.experiments.benchmark", description=__doc__.splitlines()[0],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_checked(argv)  # a bad value: one line, exit status 2
    try:
        results = run(args.data, Path(args.out), quick=args.quick)
    except LenetError as exc:
        print(f"benchmark: error: {exc}", file=sys.stderr)
        return 2
    print(benchmark_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
