# Thin wrappers over the `lenet-tf` command. Every target depends on `install`, so on a fresh
# machine `make ensemble` alone creates .venv, installs the package and runs.
#   DATA=path       the Kaggle data: a directory with train.csv/test.csv or digit-recognizer.zip
#                   (default: ./data/ when it holds them, else the embedded MNIST sample)
#   OUT=dir         run directory (default results/<target>)
#   MEMBERS=10 EPOCHS=100 SEED=0 ARGS="..." (any other lenet-tf option, e.g. ARGS=--force)
#   MODEL=standard|classic|optimized|ensemble  REPEATS=...  (evaluate, learning-curve)

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

.PHONY: install test test-slow lint standard classic optimized ensemble evaluate learning-curve report models clean help

help:
	@echo "make install | test | test-slow | lint | standard | classic | optimized | ensemble"
	@echo "     evaluate | learning-curve | report | models | clean"
	@echo "variables: DATA=<dir or zip>  OUT=<run dir>  MEMBERS=$(MEMBERS)  EPOCHS=$(EPOCHS)  SEED=$(SEED)"
	@echo "           MODEL=$(MODEL)  REPEATS=<n>  ARGS=<extra lenet-tf options>"

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
	$(BIN)/ruff check lenet_tf tests

standard classic optimized: install
	$(BIN)/lenet-tf train --model $@ $(DATA_ARG) $(EPOCHS_ARG) --out $(or $(OUT),results/$@) $(ARGS)

ensemble: install
	$(BIN)/lenet-tf ensemble --model optimized --members $(MEMBERS) $(DATA_ARG) $(EPOCHS_ARG) --out $(or $(OUT),results/ensemble) $(ARGS)

evaluate: install
	$(BIN)/lenet-tf evaluate --model $(MODEL) $(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

learning-curve: install
	$(BIN)/lenet-tf learning-curve --model $(MODEL) $(REPEATS_ARG) $(DATA_ARG) --seed $(SEED) $(if $(OUT),--out $(OUT),) $(ARGS)

report: install
	$(BIN)/lenet-tf compare --results results --output $(or $(OUT),results/report.md)

models: install
	$(BIN)/lenet-tf models

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
