"""Generate ``notebooks/DR_LeNet.ipynb`` from the cells below.

The notebook is committed without outputs and regenerated from this script, so its JSON stays
clean and reviewable: edit the cells here, then run ``python notebooks/make_notebook.py``
(``--check`` exits 1 when the committed notebook differs from what this script writes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).with_name("DR_LeNet.ipynb")

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """
# LeNets for the Kaggle Digit Recognizer: the whole study

This notebook runs the study top to bottom on the `lenet_tf` package — every step is a call into
the package, so the command line (`lenet-tf …`, `make …`) gives the same results:

1. a look at the data (exploration figures and tables),
2. the standard LeNet: training and convergence,
3. the hyperparameter search results (or the published preset),
4. the optimized LeNet,
5. the ensemble of optimized LeNets,
6. evaluation tables: repeated trainings, accuracy, ROC AUC, confusion matrices,
7. learning curves,
8. the Kaggle submission.

**Fast mode.** `LENET_FAST=1` (or `FAST = True` below) trains on a stratified subset of 1,000
digits for 2 epochs, with 1 repeat and 2 ensemble members: the whole notebook runs in a couple of
minutes on a laptop CPU. The test suite runs it that way. The full mode is the study's protocol
(100 epochs, 10 repeats, ensembles of 10) and takes many hours on a CPU; every step saves its
results as it goes, so rerunning the notebook resumes where it stopped.

**Data.** `LENET_DATA` (or `DATA` below): a directory with `train.csv`/`test.csv`, the competition
zip, or `sample`. By default `./data/` when it holds the Kaggle files, else the embedded
5,000-digit MNIST sample. Results go to `results/notebook/` (`results/notebook-fast/` in fast mode).
""",
    ),
    (
        "code",
        """
# Parameters: edit them here, or set the environment variables named.
import os
import warnings
from pathlib import Path

FAST = os.environ.get("LENET_FAST", "0") == "1"
DATA = os.environ.get("LENET_DATA") or None  # None: ./data/ when it holds the Kaggle files, else the sample
RESULTS = Path(os.environ.get("LENET_RESULTS") or ("results/notebook-fast" if FAST else "results/notebook"))
HPARAMS = Path(os.environ.get("LENET_HPARAMS") or "results/tune/best_hparams.json")  # the search's best
SEED = 0
MAX_TRAIN = 1000 if FAST else None  # stratified subset of the labeled digits; None: all of them
EPOCHS = 2 if FAST else 100
MEMBERS = 2 if FAST else 10
REPEATS = 1 if FAST else 10
CURVE_REPEATS = 1 if FAST else 20
CURVE_EPOCHS = 2 if FAST else 1000
CURVE_FRACTIONS = (0.1, 0.3, 1.0) if FAST else tuple(round(0.01 * i, 2) for i in range(1, 11))
PCA_POINTS = 1000 if FAST else 5000

# Relative paths mean the repository root, as on the command line, also when Jupyter starts the
# kernel in notebooks/.
if Path.cwd().name == "notebooks" and (Path.cwd().parent / "lenet_tf").is_dir():
    os.chdir(Path.cwd().parent)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
warnings.filterwarnings("ignore", message="IProgress not found")  # progress bars are off in this notebook
print(f"fast mode: {FAST}; data: {DATA or 'default'}; results in {Path.cwd() / RESULTS}")
""",
    ),
    (
        "code",
        """
import time

import tensorflow as tf
from IPython.display import Image, Markdown, display

from lenet_tf import (
    data,
    ensemble,
    evaluation,
    exploration,
    figures,
    learning_curve,
    models,
    pipeline,
    report,
    runs,
    submission,
)
from lenet_tf.training import TrainConfig

started = time.perf_counter()
tf.get_logger().setLevel("ERROR")  # Keras' retracing notices when many small models predict in turn


def show(path):
    \"\"\"Display a PNG the package wrote.\"\"\"
    display(Image(filename=str(path)))


def show_markdown(path):
    \"\"\"Display a Markdown file the package wrote.\"\"\"
    display(Markdown(Path(path).read_text(encoding="utf-8")))
""",
    ),
    (
        "markdown",
        """
## 1. The data

Labels, splits, pixel statistics, a PCA projection and the mean digit of each class
(`lenet_tf.experiments.exploration.explore`, also `lenet-tf explore` and `make explore`).
""",
    ),
    (
        "code",
        """
digits = data.load_data(DATA)
explored = exploration.explore(digits, RESULTS / "explore", pca_points=PCA_POINTS, seed=SEED)
show_markdown(RESULTS / "explore" / "summary.md")
for name in explored["figures"]:
    show(RESULTS / "explore" / name)
""",
    ),
    (
        "code",
        """
# The models train on this (in fast mode a stratified subset); the test digits are kept whole.
study = data.subsample(digits, MAX_TRAIN, seed=SEED) if MAX_TRAIN else digits
split = data.split_data(study, "deployment", seed=0)  # the split run_training uses (split seed 0)
fit = TrainConfig(epochs=EPOCHS)
print(study.source, split.sizes())
""",
    ),
    (
        "markdown",
        """
## 2. The standard LeNet

The reference study's LeNet (15,626 parameters), trained once on the deployment split (70/30)
with the package's protocol: batch 32, early stopping on validation accuracy, patience 5.
""",
    ),
    (
        "code",
        """
standard_run = RESULTS / "standard"
standard_spec = pipeline.JobSpec(model="standard", seed=SEED, train=fit)
pipeline.run_training(standard_spec, standard_run, data=study, progress=False)
show_markdown(standard_run / "metrics.md")
figures.plot_training_history(
    figures.load_member_histories(standard_run), standard_run / "history.png", title="standard LeNet"
)
show(standard_run / "history.png")
standard_model = ensemble.Ensemble.load(standard_run).members[0]
figures.plot_first_layer(standard_model, split.x_val[0], standard_run / "first_layer.png")
show(standard_run / "first_layer.png")
""",
    ),
    (
        "markdown",
        """
## 3. The hyperparameter search

The search (`lenet-tf tune`, `lenet_tf.experiments.tuning`) writes its best hyperparameters to
`results/tune/best_hparams.json` (`HPARAMS`), with its report beside it. When that file is there
it is used below; otherwise the optimized LeNet uses the study's published best values.
""",
    ),
    (
        "code",
        """
preset = models.OPTIMIZED_HPARAMS.to_dict()
if HPARAMS.is_file():
    hparams, hparams_path = models.load_hparams(HPARAMS), str(HPARAMS)
    origin = f"the search's best, read from `{HPARAMS}`"
else:
    # Explicitly the preset: without a path the package would look for its default search result.
    hparams, hparams_path = models.OPTIMIZED_HPARAMS, models.PRESET
    origin = f"the published preset (no search results at `{HPARAMS}`; run the search to use its best)"
rows = [[name, value, preset[name]] for name, value in hparams.to_dict().items()]
table = runs.markdown_table(["hyperparameter", "used", "published"], rows)
display(Markdown(f"Hyperparameters used: {origin}.\\n\\n{table}"))
if HPARAMS.is_file() and (HPARAMS.parent / "summary.md").is_file():  # the search's own report, when written
    show_markdown(HPARAMS.parent / "summary.md")
    for figure in sorted(HPARAMS.parent.glob("*.png")):
        show(figure)
""",
    ),
    (
        "markdown",
        """
## 4. The optimized LeNet
""",
    ),
    (
        "code",
        """
optimized_run = RESULTS / "optimized"
optimized_spec = pipeline.JobSpec(model="optimized", hparams_path=hparams_path, seed=SEED, train=fit)
pipeline.run_training(optimized_spec, optimized_run, data=study, progress=False)
show_markdown(optimized_run / "metrics.md")
histories = figures.load_member_histories(standard_run) + figures.load_member_histories(optimized_run)
figures.plot_training_history(
    histories,
    optimized_run / "history_vs_standard.png",
    title="standard vs optimized LeNet",
    names=["standard", "optimized"],
)
show(optimized_run / "history_vs_standard.png")
optimized_model = ensemble.Ensemble.load(optimized_run).members[0]
figures.plot_first_layer(optimized_model, split.x_val[0], optimized_run / "first_layer.png")
show(optimized_run / "first_layer.png")
""",
    ),
    (
        "markdown",
        """
## 5. The ensemble

`MEMBERS` optimized LeNets trained with different seeds; their class probabilities are averaged.
Below: each member's history, then the validation digits the ensemble still gets wrong.
""",
    ),
    (
        "code",
        """
ensemble_run = RESULTS / "ensemble"
ensemble_spec = pipeline.JobSpec(model="optimized", members=MEMBERS, hparams_path=hparams_path, seed=SEED, train=fit)
pipeline.run_training(ensemble_spec, ensemble_run, data=study, progress=False)
show_markdown(ensemble_run / "metrics.md")
figures.plot_training_history(
    figures.load_member_histories(ensemble_run), ensemble_run / "history.png", title=f"ensemble of {MEMBERS}"
)
show(ensemble_run / "history.png")
members = ensemble.Ensemble.load(ensemble_run)
figures.plot_misclassified(
    split.x_val,
    split.y_val,
    members.predict_proba(split.x_val),
    ensemble_run / "misclassified.png",
    title=f"validation images, ensemble of {MEMBERS}",
)
show(ensemble_run / "misclassified.png")
""",
    ),
    (
        "markdown",
        """
## 6. Evaluation

The study's protocol: one stratified 60/20/20 split, `REPEATS` trainings with new seeds, measured
on the held-out 20 %: accuracy (mean ± std, 95 % CI), per-class ROC AUC and confusion matrices.
""",
    ),
    (
        "code",
        """
candidates = [("standard", 1), ("optimized", 1), ("optimized", MEMBERS)]
for model, k in candidates:
    label = "ensemble" if k > 1 else model
    spec = evaluation.EvaluationSpec(
        model=model,
        members=k,
        repeats=REPEATS,
        seed=SEED,
        train=fit,
        hparams_path=hparams_path if model == "optimized" else None,
    )
    evaluation.evaluate(spec, RESULTS / f"evaluate-{label}", data=study, progress=False)
    show_markdown(RESULTS / f"evaluate-{label}" / "evaluation.md")
    show(RESULTS / f"evaluate-{label}" / "confusion_matrix.png")
    show(RESULTS / f"evaluate-{label}" / "roc_curves.png")
report.compare(RESULTS, RESULTS / "report.md")
show_markdown(RESULTS / "report.md")
""",
    ),
    (
        "markdown",
        """
## 7. Learning curves

Train and test accuracy against the number of training images (stratified subsets of the
evaluation split's training part, `CURVE_REPEATS` repeats each, early stopping with patience 10).
""",
    ),
    (
        "code",
        """
curve_fit = TrainConfig(epochs=CURVE_EPOCHS, patience=10)
for model in ("standard", "optimized"):
    spec = learning_curve.LearningCurveSpec(
        model=model,
        fractions=CURVE_FRACTIONS,
        repeats=CURVE_REPEATS,
        seed=SEED,
        train=curve_fit,
        hparams_path=hparams_path if model == "optimized" else None,
    )
    learning_curve.learning_curve(spec, RESULTS / f"learning-curve-{model}", data=study, progress=False)
    show_markdown(RESULTS / f"learning-curve-{model}" / "learning_curve.md")
    show(RESULTS / f"learning-curve-{model}" / "learning_curve.png")
""",
    ),
    (
        "markdown",
        """
## 8. The submission

The ensemble predicts the test digits; the file is Kaggle's `ImageId,Label` format, checked after
writing. An existing file with other predictions is never overwritten silently.
""",
    ),
    (
        "code",
        """
if study.test_images is None:
    display(Markdown(f"{study.source} has no test images: no submission."))
else:
    path = pipeline.predict_run(ensemble_run, RESULTS / "submission.csv", data=study)
    written = submission.read_submission(path, expected_rows=len(study.test_images))
    counts = written["Label"].value_counts().sort_index()
    rows = [[digit, n, n / len(written)] for digit, n in counts.items()]
    table = runs.markdown_table(["digit", "predicted", "share"], rows)
    display(Markdown(f"Submission written: `{path}`, {len(written):,} rows.\\n\\n{table}"))
    display(written.head())
    shown = study.test_images[:30]
    figures.plot_test_predictions(
        shown,
        members.predict_proba(shown),
        RESULTS / "test_predictions.png",
        title=f"First {len(shown)} test digits, ensemble of {MEMBERS}",
        labels=None if study.test_labels is None else study.test_labels[:30],
    )
    show(RESULTS / "test_predictions.png")
print(f"notebook finished in {time.perf_counter() - started:.0f} s")
""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook, outputs empty, cell ids stable so that regenerating gives the same file."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source.strip("\n"))
        cell.id = f"cell-{index:02d}"
        if index == 1:
            cell.metadata["tags"] = ["parameters"]  # papermill's convention for the parameter cell
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render() -> str:
    """The notebook's JSON text as committed."""
    return nbformat.writes(build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the notebook (or, with ``--check``, compare it with the committed one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=NOTEBOOK, help=f"default {NOTEBOOK}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the notebook is not up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date: run python notebooks/make_notebook.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
