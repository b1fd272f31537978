# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # LeNets for the Kaggle Digit Recognizer: the whole study
#
# This notebook runs the study top to bottom on the `lenet_tf` package — every step is a call into
# the package, so the command line (`lenet-tf …`, `make …`) gives the same results:
#
# 1. a look at the data (exploration figures and tables),
# 2. the standard LeNet: the builder, its summary, a plain Keras `fit` with the package's early stopping,
# 3. the hyperparameter search results (or the published preset),
# 4. the optimized LeNet, trained by `run_training` (the job behind `lenet-tf train`),
# 5. the ensemble of optimized LeNets,
# 6. evaluation tables: repeated trainings, accuracy, ROC AUC, confusion matrices,
# 7. learning curves,
# 8. the Kaggle submission.
#
# **Fast mode.** `LENET_FAST=1` (or `FAST = True` below) trains on a stratified subset of 500
# digits for 1 epoch, with 1 repeat, 2 ensemble members and 2 learning-curve points: the whole
# notebook runs in a minute or two on a laptop CPU. The test suite runs it that way. The full mode
# is the study's protocol (100 epochs, 10 repeats, ensembles of 10) and takes many hours on a CPU;
# every step after the first model saves its results as it goes, so rerunning the notebook resumes
# where it stopped.
#
# **Data.** `LENET_DATA` (or `DATA` below): a directory with `train.csv`/`test.csv`, the competition
# zip, or `sample`. By default `./data/` when it holds the Kaggle files, else the embedded
# 5,000-digit MNIST sample. Results go to `results/notebook/` (`results/notebook-fast/` in fast mode).
#
# **Source.** This notebook's source is `notebooks/DR_LeNet.py` (jupytext's percent format, checked
# by ruff); `notebooks/DR_LeNet.ipynb` is its pair, committed without outputs. Edit either in
# Jupyter (with jupytext installed both are saved together) or edit the `.py` and run
# `jupytext --sync notebooks/DR_LeNet.py`.

# %%
import logging
import os
import time
import warnings
from pathlib import Path

from IPython.display import Image, Markdown, display

# Before lenet_tf's imports: TensorFlow reads its log level when it is first imported (no start-up
# chatter), and tqdm warns once that Jupyter's widgets are missing (this notebook shows no bars).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="IProgress not found")

from lenet_tf import (  # noqa: E402
    JobSpec,
    TrainConfig,
    early_stopping,
    figures,
    load_data,
    models,
    run_training,
    rundir,
    split_data,
    standard_lenet,
)
from lenet_tf.data import prepare, subsample  # noqa: E402
from lenet_tf.experiments import evaluation, exploration, learning_curve, report  # noqa: E402
from lenet_tf.submission import read_submission  # noqa: E402

# %% tags=["parameters"]
# Parameters: edit them here, or set the environment variables named.
FAST = os.environ.get("LENET_FAST", "0") == "1"
DATA = os.environ.get("LENET_DATA") or None  # None: ./data/ when it holds the Kaggle files, else the sample
RESULTS = Path(os.environ.get("LENET_RESULTS") or ("results/notebook-fast" if FAST else "results/notebook"))
HPARAMS = Path(os.environ.get("LENET_HPARAMS") or "results/tune/best_hparams.json")  # the search's best
SEED = 0
MAX_TRAIN = 500 if FAST else None  # stratified subset of the labeled digits; None: all of them
EPOCHS = 1 if FAST else 100
MEMBERS = 2 if FAST else 10
REPEATS = 1 if FAST else 10
CURVE_REPEATS = 1 if FAST else 20
CURVE_EPOCHS = 1 if FAST else 1000
CURVE_FRACTIONS = (0.5, 1.0) if FAST else tuple(round(0.01 * i, 2) for i in range(1, 11))
PCA_POINTS = 500 if FAST else 5000

# %%
# Relative paths mean the repository root, as on the command line, also when Jupyter starts the
# kernel in notebooks/.
if Path.cwd().name == "notebooks" and (Path.cwd().parent / "lenet_tf").is_dir():
    os.chdir(Path.cwd().parent)
logging.getLogger("tensorflow").setLevel("ERROR")  # Keras' retracing notices when many small models predict
started = time.perf_counter()
print(f"fast mode: {FAST}; data: {DATA or 'default'}; results in {Path.cwd() / RESULTS}")


def show(path):
    """Display a PNG the package wrote."""
    display(Image(filename=str(path)))


def show_markdown(path):
    """Display a Markdown file the package wrote."""
    display(Markdown(Path(path).read_text(encoding="utf-8")))


# %% [markdown]
# ## 1. The data
#
# Labels, splits, pixel statistics, a PCA projection and the mean digit of each class
# (`lenet_tf.experiments.exploration.explore`, also `lenet-tf explore` and `make explore`).

# %%
digits = load_data(DATA)
explored = exploration.explore(digits, RESULTS / "explore", pca_points=PCA_POINTS, seed=SEED)
show_markdown(RESULTS / "explore" / "summary.md")
for name in explored["figures"]:
    show(RESULTS / "explore" / name)

# %%
# The models train on this (in fast mode a stratified subset); the test digits are kept whole.
study = subsample(digits, MAX_TRAIN, seed=SEED) if MAX_TRAIN else digits
print(study.source, f"{len(study.train_labels):,} labeled digits")

# %% [markdown]
# ## 2. The standard LeNet
#
# The reference study's LeNet (15,626 parameters), built by its builder and trained here with plain
# Keras: `model.fit` on the deployment split (70/30, split seed 0) at batch 32, with the package's
# early-stopping callback (validation accuracy, patience 5, best weights restored), the protocol
# that `lenet_tf.training.fit` and every command use.

# %%
split = split_data(study, "deployment", seed=0)
print(split.sizes())
standard_model = standard_lenet()
standard_model.summary()

# %%
standard_run = RESULTS / "standard"
standard_run.mkdir(parents=True, exist_ok=True)
protocol = TrainConfig(epochs=EPOCHS)  # batch 32, patience 5: the reference protocol
standard_history = standard_model.fit(
    prepare(split.x_train),
    split.y_train,
    validation_data=(prepare(split.x_val), split.y_val),
    epochs=protocol.epochs,
    batch_size=protocol.batch_size,
    callbacks=[early_stopping(protocol)],
    verbose=0,
).history
best = max(standard_history["val_accuracy"])
print(f"standard LeNet: best validation accuracy {best:.4f} after {len(standard_history['loss'])} epoch(s)")
figures.plot_training_history(standard_history, standard_run / "history.png", title="standard LeNet")
show(standard_run / "history.png")
figures.plot_first_layer(standard_model, split.x_val[0], standard_run / "first_layer.png")
show(standard_run / "first_layer.png")

# %% [markdown]
# ## 3. The hyperparameter search
#
# The search (`lenet-tf tune`, `lenet_tf.experiments.tuning`) writes its best hyperparameters to
# `results/tune/best_hparams.json` (`HPARAMS`), with its report beside it. When that file is there
# it is used below; otherwise the optimized LeNet uses the study's published best values.

# %%
preset = models.OPTIMIZED_HPARAMS.to_dict()
if HPARAMS.is_file():
    hparams, hparams_path = models.load_hparams(HPARAMS), str(HPARAMS)
    origin = f"the search's best, read from `{HPARAMS}`"
else:
    # Explicitly the preset: without a path the package would look for its default search result.
    hparams, hparams_path = models.OPTIMIZED_HPARAMS, models.PRESET
    origin = f"the published preset (no search results at `{HPARAMS}`; run the search to use its best)"
rows = [[name, value, preset[name]] for name, value in hparams.to_dict().items()]
table = rundir.markdown_table(["hyperparameter", "used", "published"], rows)
display(Markdown(f"Hyperparameters used: {origin}.\n\n{table}"))
if HPARAMS.is_file() and (HPARAMS.parent / "summary.md").is_file():  # the search's own report, when written
    show_markdown(HPARAMS.parent / "summary.md")
    for figure in sorted(HPARAMS.parent.glob("*.png")):
        show(figure)

# %% [markdown]
# ## 4. The optimized LeNet
#
# From here on the notebook calls `run_training`, the job behind `lenet-tf train` and `lenet-tf
# ensemble`: it splits the data the same way, trains with the same protocol, writes a run directory
# (`metrics.md`, members, submission) and returns what it computed: the ensemble of trained members,
# the split, each member's `FitResult` (history, best epoch, accuracy) and the metrics.

# %%
optimized_run = run_training(
    JobSpec(model="optimized", hparams_path=hparams_path, seed=SEED, train=protocol),
    RESULTS / "optimized",
    data=study,
    progress=False,
)
show_markdown(optimized_run.out / "metrics.md")
figures.plot_training_history(
    [standard_history, optimized_run.members[0].history],
    optimized_run.out / "history_vs_standard.png",
    title="standard vs optimized LeNet",
    names=["standard", "optimized"],
)
show(optimized_run.out / "history_vs_standard.png")
figures.plot_first_layer(
    optimized_run.ensemble.members[0], optimized_run.split.x_val[0], optimized_run.out / "first_layer.png"
)
show(optimized_run.out / "first_layer.png")

# %% [markdown]
# ## 5. The ensemble
#
# `MEMBERS` optimized LeNets trained with different seeds; their class probabilities are averaged.
# Below: each member's history, then the validation digits the ensemble still gets wrong.

# %%
ensemble_run = run_training(
    JobSpec(model="optimized", members=MEMBERS, hparams_path=hparams_path, seed=SEED, train=protocol),
    RESULTS / "ensemble",
    data=study,
    progress=False,
)
show_markdown(ensemble_run.out / "metrics.md")
figures.plot_training_history(
    [member.history for member in ensemble_run.members],
    ensemble_run.out / "history.png",
    title=f"ensemble of {MEMBERS}",
)
show(ensemble_run.out / "history.png")
figures.plot_misclassified(
    ensemble_run.split.x_val,
    ensemble_run.split.y_val,
    ensemble_run.ensemble.predict_proba(ensemble_run.split.x_val),
    ensemble_run.out / "misclassified.png",
    title=f"validation images, ensemble of {MEMBERS}",
)
show(ensemble_run.out / "misclassified.png")

# %% [markdown]
# ## 6. Evaluation
#
# The study's protocol: one stratified 60/20/20 split, `REPEATS` trainings with new seeds, measured
# on the held-out 20 %: accuracy (mean ± std, 95 % CI), per-class ROC AUC and confusion matrices.

# %%
candidates = [("standard", 1), ("optimized", 1), ("optimized", MEMBERS)]
for model, k in candidates:
    label = "ensemble" if k > 1 else model
    spec = evaluation.EvaluationSpec(
        model=model,
        members=k,
        repeats=REPEATS,
        seed=SEED,
        train=protocol,
        hparams_path=hparams_path if model == "optimized" else None,
    )
    evaluation.evaluate(spec, RESULTS / f"evaluate-{label}", data=study, progress=False)
    show_markdown(RESULTS / f"evaluate-{label}" / "evaluation.md")
    show(RESULTS / f"evaluate-{label}" / "confusion_matrix.png")
    show(RESULTS / f"evaluate-{label}" / "roc_curves.png")
report.compare(RESULTS, RESULTS / "report.md")
show_markdown(RESULTS / "report.md")

# %% [markdown]
# ## 7. Learning curves
#
# Train and test accuracy against the number of training images (stratified subsets of the
# evaluation split's training part, `CURVE_REPEATS` repeats each, early stopping with patience 10).

# %%
curve_protocol = TrainConfig(epochs=CURVE_EPOCHS, patience=10)
for model in ("standard", "optimized"):
    spec = learning_curve.LearningCurveSpec(
        model=model,
        fractions=CURVE_FRACTIONS,
        repeats=CURVE_REPEATS,
        seed=SEED,
        train=curve_protocol,
        hparams_path=hparams_path if model == "optimized" else None,
    )
    learning_curve.learning_curve(spec, RESULTS / f"learning-curve-{model}", data=study, progress=False)
    show_markdown(RESULTS / f"learning-curve-{model}" / "learning_curve.md")
    show(RESULTS / f"learning-curve-{model}" / "learning_curve.png")

# %% [markdown]
# ## 8. The submission
#
# `run_training` already wrote the ensemble's submission (`ensemble_run.submission`) when the data has
# test digits: Kaggle's `ImageId,Label` format, checked after writing; an existing file with other
# predictions is never overwritten silently. Here it is read back and summarised.

# %%
if ensemble_run.submission is None:
    display(Markdown(f"{study.source} has no test images: no submission."))
else:
    written = read_submission(ensemble_run.submission, expected_rows=len(study.test_images))
    counts = written["Label"].value_counts().sort_index()
    rows = [[digit, n, n / len(written)] for digit, n in counts.items()]
    table = rundir.markdown_table(["digit", "predicted", "share"], rows)
    display(Markdown(f"Submission written: `{ensemble_run.submission}`, {len(written):,} rows.\n\n{table}"))
    display(written.head())
    shown = study.test_images[:30]
    figures.plot_test_predictions(
        shown,
        ensemble_run.ensemble.predict_proba(shown),
        RESULTS / "test_predictions.png",
        title=f"First {len(shown)} test digits, ensemble of {MEMBERS}",
        labels=None if study.test_labels is None else study.test_labels[:30],
    )
    show(RESULTS / "test_predictions.png")
print(f"notebook finished in {time.perf_counter() - started:.0f} s")
