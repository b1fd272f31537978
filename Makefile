# Thin wrappers over the `lenet-tf` command. Every target but help and clean depends on `install`,
# so on a fresh machine `make ensemble` alone creates .venv, installs the package and runs.
#   DATA=path       the Kaggle data: a directory with train.csv (+ test.csv) or digit-recognizer.zip
#                   (default: ./data/ when it holds them, else the embedded MNIST sample)
#   OUT=path        run directory (default results/<target>; evaluate, learning-curve, robustness, study:
#                   the command's own results/<command>-<model or name>); report: the .md; notebooks: the .ipynb
#   SEED=0; EPOCHS=100 and MEMBERS=10 where a target always passes them (standard, classic, optimized,
#                   ensemble-reference), elsewhere only when given (ensemble, evaluate, learning-curve, tune)
#   ARGS="..."      more options for the lenet-tf command (levers, bench: their own modules' options)
#   MODEL=standard|classic|optimized|ensemble|lenet5-bn|...  REPEATS=...  (evaluate, learning-curve)
#   MODEL=... RUN=dir (robustness: RUN attacks a finished run's model(s) instead of training one)
#   REPEATS=... also for baselines, robustness, study; MODEL_RUN=dir (explore); FAST=1 (notebooks)
#   NAME=activation|initialization|optimizer|dropout|batch_size  (study)
#   TRIALS=200 TUNER=bayesian|hyperband|random  (tune, tune-chief, tune-worker; EPOCHS only when given)
#   ORACLE_IP=127.0.0.1 ORACLE_PORT=8000 TUNER_ID=worker-HOSTNAME  (tune-chief, tune-worker)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

MEMBERS ?= 10
EPOCHS ?= 100
SEED ?= 0
DATA_ARG := $(if $(DATA),--data $(DATA),)
EPOCHS_ARG := --epochs $(EPOCHS) --seed $(SEED)

MODEL ?= standard
REPEATS_ARG := $(if $(REPEATS),--repeats $(REPEATS),)

# Search: the tuner's own epoch cap (100, Hyperband 10) unless EPOCHS is given explicitly.
TUNER ?= bayesian
ORACLE_IP ?= 127.0.0.1
ORACLE_PORT ?= 8000
TUNE_ARGS = --tuner $(TUNER) $(if $(TRIALS),--trials $(TRIALS),) \
	$(if $(filter command line environment,$(origin EPOCHS)),--epochs $(EPOCHS),) \
	$(DATA_ARG) --seed $(SEED) --out $(or $(OUT),results/tune)
ORACLE_ARGS = --oracle-ip $(ORACLE_IP) --oracle-port $(ORACLE_PORT)

.PHONY: explore notebooks jupyter bench install test test-slow lint standard classic optimized ensemble ensemble-reference levers evaluate learning-curve report models clean help \
	tune tune-chief tune-worker baselines robustness study

help:
	@echo "make install | test | test-slow | lint | standard | classic | optimized | ensemble | ensemble-reference | levers"
	@echo "     evaluate | learning-curve | report | models | tune | tune-chief | tune-worker"
	@echo "     explore | notebooks | jupyter | bench | baselines | robustness | study | clean"
	@echo "variables: DATA=<dir or zip>  OUT=<run dir>  MEMBERS=$(MEMBERS)  EPOCHS=$(EPOCHS)  SEED=$(SEED)"
	@echo "           MODEL=$(MODEL)  REPEATS=<n>  ARGS=<extra lenet-tf options>  RUN=<run dir>  NAME=<study>"
	@echo "           TRIALS=<n>  TUNER=$(TUNER)  ORACLE_IP=$(ORACLE_IP)  ORACLE_PORT=$(ORACLE_PORT)  TUNER_ID=<worker name>"

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check lenet_tf tests preliminary notebooks

standard classic optimized: install
	$(BIN)/lenet-tf train --model $@ $(DATA_ARG) $(EPOCHS_ARG) --out $(or $(OUT),results/$@) $(ARGS)

# The flagship: 3 batch-normalised LeNet-5s (lenet5-bn), 15 epochs, augmentation, batch 128, cosine decay,
# 8 steps per execution, no TTA (lenet-tf ensemble --recipe flagship); MEMBERS / EPOCHS only when given.
GIVEN = $(filter command line environment,$(origin $(1)))
FLAGSHIP_ARGS = --recipe flagship $(if $(call GIVEN,MEMBERS),--members $(MEMBERS),) \
	$(if $(call GIVEN,EPOCHS),--epochs $(EPOCHS),) --seed $(SEED)
ensemble: install
	$(BIN)/lenet-tf ensemble $(FLAGSHIP_ARGS) $(DATA_ARG) --out $(or $(OUT),results/ensemble) $(ARGS)

# The reference study's ensemble: 10 optimized LeNets, batch 32, Adam 1e-3, patience 5 (hours on a CPU).
ensemble-reference: install
	$(BIN)/lenet-tf ensemble --model optimized --members $(MEMBERS) $(DATA_ARG) $(EPOCHS_ARG) --out $(or $(OUT),results/ensemble-reference) $(ARGS)

# The flagship's levers, one member each, from the reference protocol to the flagship → results/levers/.
levers: install
	$(BIN)/python -m lenet_tf.experiments.levers $(DATA_ARG) --out $(or $(OUT),results/levers) $(ARGS)

# MODEL=ensemble is the study's ensemble (10 optimized LeNets per repeat); MEMBERS=K only when given.
MEMBERS_ARG = $(if $(call GIVEN,MEMBERS),--members $(MEMBERS),)
evaluate: install
	$(BIN)/lenet-tf evaluate --model $(MODEL) $(MEMBERS_ARG) $(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

learning-curve: install
	$(BIN)/lenet-tf learning-curve --model $(MODEL) $(MEMBERS_ARG) $(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

# Baselines (kNN on PCA features, random forests) on the evaluation split → results/baselines/.
baselines: install
	$(BIN)/lenet-tf baselines $(DATA_ARG) --seed $(SEED) $(REPEATS_ARG) --out $(or $(OUT),results/baselines) $(ARGS)

# FGSM robustness of MODEL with and without adversarial training (RUN=dir: attack a finished run).
robustness: install
	$(BIN)/lenet-tf robustness $(if $(RUN),--run $(RUN) $(if $(filter command line environment,$(origin MODEL)),--model $(MODEL),),--model $(MODEL)) \
		$(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

# A training study: make study NAME=activation|initialization|optimizer|dropout|batch_size.
study: install
	$(if $(NAME),,$(error make study needs NAME=activation|initialization|optimizer|dropout|batch_size))
	$(BIN)/lenet-tf study --name $(NAME) $(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

report: install
	$(BIN)/lenet-tf compare --results results --output $(or $(OUT),results/report.md)

models: install
	$(BIN)/lenet-tf models

tune: install
	$(BIN)/lenet-tf tune $(TUNE_ARGS) $(ARGS)

tune-chief: install
	$(BIN)/lenet-tf tune --role chief $(ORACLE_ARGS) $(TUNE_ARGS) $(ARGS)

tune-worker: install
	$(BIN)/lenet-tf tune --role worker $(ORACLE_ARGS) $(if $(TUNER_ID),--tuner-id $(TUNER_ID),) $(TUNE_ARGS) $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

# Data exploration: figures + summary.md into results/explore/ (MODEL_RUN=dir adds test predictions).
explore: install
	$(BIN)/lenet-tf explore $(DATA_ARG) --out $(or $(OUT),results/explore) $(if $(MODEL_RUN),--model-run $(MODEL_RUN),) $(ARGS)

# Execute the study notebook headless (FAST=1: fast mode, a couple of minutes); the executed copy,
# figures inline, goes to results/notebook/ and the committed notebook keeps no outputs.
notebooks: install
	$(BIN)/python notebooks/run_notebook.py $(if $(filter-out 0,$(FAST)),--fast,) $(DATA_ARG) --output $(or $(OUT),results/notebook/DR_LeNet.ipynb)

# Open the notebook in JupyterLab (installs the optional `notebook` extra first).
jupyter: install
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/DR_LeNet.ipynb

# Speed and memory benchmarks (ratios within one run) into results/bench/; not part of `make test`.
bench: install
	$(BIN)/python -m lenet_tf.experiments.benchmark $(DATA_ARG) --out $(or $(OUT),results/bench) $(ARGS)
