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

## models: reproduce the embedded models (training/.venv from training/requirements.txt; train, export
##         with onnxruntime verification, evaluate the exported ONNX). DEVICE=cuda trains on a GPU.
.PHONY: models models-export models-eval
TRAIN_VENV := training/.venv
DEVICE ?= cpu

$(TRAIN_VENV)/.installed: training/requirements.txt
	python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -r training/requirements.txt
	touch $@

models: $(TRAIN_VENV)/.installed
	cd training && HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python build_models.py --device $(DEVICE)

## models-export: re-export + evaluate from the runs already in training/runs/ (no training)
models-export: $(TRAIN_VENV)/.installed
	cd training && HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python build_models.py --skip-train

## models-eval: evaluate the committed models/ with onnxruntime and print the accuracy table
models-eval: $(TRAIN_VENV)/.installed
	cd training && HF_HUB_OFFLINE=1 .venv/bin/python evaluate.py
