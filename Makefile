# Two commands on a fresh machine:  `make demo` (install, generate a labelled set and a preview sheet
# from the bundled patterns, run the shipped model on it and score it) and `make test` (install + run
# the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the release this project is tested with; override for another platform, e.g.
# `make TORCH="torch torchvision" test`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= out/demo
# few images: once installed, the whole demo takes about two minutes on a 2-core CPU
DEMO_COUNT ?= 8

.PHONY: install demo test

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf $(DEMO_OUT)  # the demo's own output folder: regenerated from the seed on every run
	$(BIN)/synthgen generate patterns/*/pattern.txt --out $(DEMO_OUT)/set --count $(DEMO_COUNT) --seed 2022
	$(BIN)/synthgen preview $(DEMO_OUT)/set --out $(DEMO_OUT)/preview.png
	$(BIN)/detector predict $(DEMO_OUT)/set/images --out $(DEMO_OUT)/predicted
	$(BIN)/detector evaluate --set demo=$(DEMO_OUT)/set --out $(DEMO_OUT)/evaluation
	@echo
	@echo "labelled set (images, YOLO labels, COCO annotations.json): $(DEMO_OUT)/set"
	@echo "preview sheet of the set with its labels drawn:            $(DEMO_OUT)/preview.png"
	@echo "shipped model's detections, drawn on each image:           $(DEMO_OUT)/predicted/annotated/"
	@echo "particle table and size statistics:                        $(DEMO_OUT)/predicted/detections.csv, summary.json"
	@echo "size histograms per class:                                 $(DEMO_OUT)/predicted/sizes_*.png"
	@echo "score against the set's labels (mAP, IoU, TP/FP/FN):       $(DEMO_OUT)/evaluation/report.md"
	@echo "web page with the same model: $(BIN)/detector serve, then open http://127.0.0.1:8000/"

test: install
	$(BIN)/python -m pytest
