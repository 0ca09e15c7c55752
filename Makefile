# Kiln's entry points. `make test` is what CI runs.
.PHONY: test build release serve

## test: install what the tests need, then run the whole test suite (CI runs exactly this)
test:
	scripts/test

## build: debug build of the kiln tool
build:
	swift build

## release: optimized build (.build/release/kiln)
release:
	swift build -c release

## serve: serve the embedded default model on 127.0.0.1:8080
serve:
	scripts/serve

## models: reproduce the embedded models (training/.venv from training/requirements.txt; train with
##         dev-based checkpoint selection, export with onnxruntime verification, evaluate the exported
##         ONNX on dev + test). DEVICE=cuda trains on a GPU; JOBS=5 trains all five at once;
##         QUICK=1 (20 steps per model; QUICK=N: N steps) runs the whole pipeline into
##         training/runs/quick/, never over models/; PROTOCOL=v1 trains as the shipped v1 models were;
##         TRAIN_PY=python3 uses that interpreter instead of creating training/.venv (offline GPU box);
##         MODELS_OUT=DIR writes runs + model repository under DIR instead of training/runs + models/.
.PHONY: models models-export models-eval
TRAIN_VENV := training/.venv
DEVICE ?= cpu
JOBS ?= 1
PROTOCOL ?= dev
QUICK ?=
TRAIN_PY ?=
TRAIN_PYTHON := $(if $(TRAIN_PY),$(TRAIN_PY),.venv/bin/python)
TRAIN_DEPS := $(if $(TRAIN_PY),,$(TRAIN_VENV)/.installed)
MODELS_OUT ?=
MODELS_FLAGS := --device $(DEVICE) --jobs $(JOBS) --protocol $(PROTOCOL) \
	$(if $(QUICK),--quick $(if $(filter 1,$(QUICK)),20,$(QUICK))) $(if $(MODELS_OUT),--out $(MODELS_OUT))

$(TRAIN_VENV)/.installed: training/requirements.txt
	python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -r training/requirements.txt
	touch $@

models: $(TRAIN_DEPS)
	cd training && HF_HUB_OFFLINE=1 nice -n 15 $(TRAIN_PYTHON) build_models.py $(MODELS_FLAGS)

## models-export: re-export + evaluate from the runs already in training/runs/ (no training)
models-export: $(TRAIN_DEPS)
	cd training && HF_HUB_OFFLINE=1 nice -n 15 $(TRAIN_PYTHON) build_models.py --skip-train

## models-eval: evaluate the committed models/ (dev + test) with onnxruntime and print the accuracy table
models-eval: $(TRAIN_DEPS)
	cd training && HF_HUB_OFFLINE=1 $(TRAIN_PYTHON) evaluate.py
