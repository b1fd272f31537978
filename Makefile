# Thin wrappers over the `lenet-tf` command. Every target but help and clean depends on `install`,
# so on a fresh machine `make ensemble` alone creates .venv, installs the package and runs.
# A variable is passed to lenet-tf only when you set it (`make ensemble EPOCHS=20`); left unset, the
# command's own default applies (`lenet-tf COMMAND --help` shows them; `make help` the main ones).
#   DATA=path       the Kaggle data: a directory with train.csv (+ test.csv) or digit-recognizer.zip
#                   (default: ./data/ when it holds them, else the embedded MNIST sample)
#   OUT=path        run directory (default results/<target>; evaluate, learning-curve, robustness, study:
#                   the command's own results/<command>-<model or name>); report: the .md; notebooks: the .ipynb
#   SEED= EPOCHS= MEMBERS= MODEL= REPEATS=   the same-named options of the targets that take them
#   ARGS="..."      more options for the lenet-tf command (levers, bench: their own modules' options)
#   MODEL=standard|classic|optimized|ensemble|lenet5-bn|...  (evaluate, learning-curve, robustness)
#   RUN=dir (robustness: attack a finished run's model(s) instead of training one;
#           explore: its models predict test digits; MODEL_RUN=, the former name there, still works)
#   NAME=activation|initialization|optimizer|dropout|batch_size  (study); FAST=1 (notebooks)
#   TRIALS= TUNER=bayesian|hyperband|random  (tune, tune-chief, tune-worker)
#   ORACLE_IP=127.0.0.1 ORACLE_PORT=8000 TUNER_ID=worker-HOSTNAME  (tune-chief, tune-worker)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# $(call arg,VAR,--flag): "--flag $(VAR)" when VAR was set on the command line or in the
# environment, else nothing (the command's default).
GIVEN = $(filter command line environment,$(origin $(1)))
arg = $(if $(call GIVEN,$(1)),$(2) $($(1)),)
DATA_ARG = $(call arg,DATA,--data)
OUT_ARG = $(call arg,OUT,--out)
SEED_ARG = $(call arg,SEED,--seed)
FIT_ARGS = $(call arg,EPOCHS,--epochs) $(SEED_ARG)
MEMBERS_ARG = $(call arg,MEMBERS,--members)
MODEL_ARG = $(call arg,MODEL,--model)
REPEATS_ARG = $(call arg,REPEATS,--repeats)

# The tuner's own epoch cap (100, Hyperband 10) unless EPOCHS is given.
TUNE_ARGS = $(call arg,TUNER,--tuner) $(call arg,TRIALS,--trials) $(call arg,EPOCHS,--epochs) $(DATA_ARG) \
	$(SEED_ARG) $(OUT_ARG)
# Chief and workers must meet somewhere: these two are make's own defaults, always passed.
ORACLE_IP ?= 127.0.0.1
ORACLE_PORT ?= 8000
ORACLE_ARGS = --oracle-ip $(ORACLE_IP) --oracle-port $(ORACLE_PORT)

.PHONY: explore notebooks jupyter bench bench-executor install test test-slow lint standard classic optimized ensemble ensemble-reference levers evaluate learning-curve report models clean help \
	tune tune-chief tune-worker baselines robustness study

# The defaults shown are the lenet-tf command's (tests/test_cli.py checks them against the code).
help:
	@echo "make install | test | test-slow | lint | standard | classic | optimized | ensemble | ensemble-reference | levers"
	@echo "     evaluate | learning-curve | report | models | tune | tune-chief | tune-worker"
	@echo "     explore | notebooks | jupyter | bench | bench-executor | baselines | robustness | study | clean"
	@echo "variables (passed only when set; unset, the command's default): DATA=<dir or zip>  OUT=<run dir>  SEED=0"
	@echo "  ensemble: the flagship recipe, MEMBERS=3 EPOCHS=15 (lenet5-bn); ensemble-reference: MEMBERS=10 EPOCHS=100"
	@echo "  standard | classic | optimized: EPOCHS=100; evaluate: MODEL=standard REPEATS=10 EPOCHS=100"
	@echo "  learning-curve: MODEL=standard REPEATS=20 EPOCHS=1000; robustness: MODEL=standard (unless RUN=<run dir>) REPEATS=3"
	@echo "  study: NAME=<study> REPEATS=3; baselines: REPEATS=1; explore: RUN=<run dir>; ARGS=<extra lenet-tf options>"
	@echo "  tune: TUNER=bayesian TRIALS=200 EPOCHS=100 (hyperband: 10); ORACLE_IP=$(ORACLE_IP) ORACLE_PORT=$(ORACLE_PORT) TUNER_ID=<worker name>"

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,cluster]'
	touch $(STAMP)

# Two workers, one per core of the 2-core CI machine: one process leaves a core idle much of the
# time (TensorFlow starting in subprocesses, Python-bound steps on tiny data); 547 s against 884 s
# serial, side by side on a quiet machine (docs/benchmarks.md). Whole files per worker (loadfile),
# so a module's fixture is built once.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check lenet_tf tests preliminary notebooks

standard classic optimized: install
	$(BIN)/lenet-tf train --model $@ $(DATA_ARG) $(FIT_ARGS) $(OUT_ARG) $(ARGS)

# The flagship: 3 batch-normalised LeNet-5s (lenet5-bn), 15 epochs, augmentation, batch 128, cosine decay,
# 8 steps per execution, no TTA, then each member refit on all labels (lenet-tf ensemble, its default recipe).
ensemble: install
	$(BIN)/lenet-tf ensemble $(MEMBERS_ARG) $(FIT_ARGS) $(DATA_ARG) $(OUT_ARG) $(ARGS)

# The reference study's ensemble: 10 optimized LeNets, batch 32, Adam 1e-3, patience 5 (hours on a CPU).
ensemble-reference: install
	$(BIN)/lenet-tf ensemble --recipe reference $(MEMBERS_ARG) $(DATA_ARG) $(FIT_ARGS) --out $(or $(OUT),results/ensemble-reference) $(ARGS)

# The flagship's levers, one member each, from the reference protocol to the flagship → results/levers/.
levers: install
	$(BIN)/python -m lenet_tf.experiments.levers $(DATA_ARG) $(OUT_ARG) $(ARGS)

# MODEL=ensemble is the study's ensemble (10 optimized LeNets per repeat).
evaluate learning-curve: install
	$(BIN)/lenet-tf $@ $(MODEL_ARG) $(MEMBERS_ARG) $(REPEATS_ARG) $(DATA_ARG) $(FIT_ARGS) $(OUT_ARG) $(ARGS)

# Baselines (kNN on PCA features, random forests) on the evaluation split → results/baselines/.
baselines: install
	$(BIN)/lenet-tf baselines $(DATA_ARG) $(SEED_ARG) $(REPEATS_ARG) $(OUT_ARG) $(ARGS)

# FGSM robustness of MODEL with and without adversarial training (RUN=dir: attack a finished run).
robustness: install
	$(BIN)/lenet-tf robustness $(call arg,RUN,--run) $(or $(MODEL_ARG),$(if $(RUN),,--model standard)) \
		$(REPEATS_ARG) $(DATA_ARG) $(FIT_ARGS) $(OUT_ARG) $(ARGS)

# A training study: make study NAME=activation|initialization|optimizer|dropout|batch_size.
study: install
	$(if $(NAME),,$(error make study needs NAME=activation|initialization|optimizer|dropout|batch_size))
	$(BIN)/lenet-tf study --name $(NAME) $(REPEATS_ARG) $(DATA_ARG) $(FIT_ARGS) $(OUT_ARG) $(ARGS)

report: install
	$(BIN)/lenet-tf compare $(call arg,OUT,--output)

models: install
	$(BIN)/lenet-tf models

tune: install
	$(BIN)/lenet-tf tune $(TUNE_ARGS) $(ARGS)

tune-chief: install
	$(BIN)/lenet-tf tune --role chief $(ORACLE_ARGS) $(TUNE_ARGS) $(ARGS)

tune-worker: install
	$(BIN)/lenet-tf tune --role worker $(ORACLE_ARGS) $(call arg,TUNER_ID,--tuner-id) $(TUNE_ARGS) $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

# Data exploration: figures + summary.md into results/explore/ (RUN=dir adds test predictions).
explore: install
	$(BIN)/lenet-tf explore $(DATA_ARG) $(OUT_ARG) $(call arg,RUN,--run) $(call arg,MODEL_RUN,--run) $(ARGS)

# Execute the study notebook headless (FAST=1: fast mode, a couple of minutes); the executed copy,
# figures inline, goes to results/notebook/ and the committed notebook keeps no outputs.
notebooks: install
	$(BIN)/python notebooks/run_notebook.py $(if $(filter-out 0,$(FAST)),--fast,) $(DATA_ARG) $(call arg,OUT,--output)

# Open the notebook in JupyterLab (installs the optional `notebook` extra first).
jupyter: install
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/DR_LeNet.ipynb

# Speed and memory benchmarks (ratios within one run) into results/bench/; not part of `make test`.
bench: install
	$(BIN)/python -m lenet_tf.experiments.benchmark $(DATA_ARG) $(OUT_ARG) $(ARGS)

# The Ray executor against serial on the same small plan (docs/benchmarks.md) into results/bench-executor/.
bench-executor: install
	$(BIN)/python -m lenet_tf.experiments.executor_bench $(DATA_ARG) $(OUT_ARG) $(ARGS)
