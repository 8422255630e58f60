# Two commands on a fresh machine:  `make demo` (install + generate a labelled set and a preview sheet
# from the bundled patterns) and `make test` (install + run the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the release this project is tested with; override for another platform, e.g.
# `make TORCH="torch torchvision" test`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= out/demo

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
	$(BIN)/synthgen generate patterns/*/pattern.txt --out $(DEMO_OUT) --count 16 --seed 2022
	$(BIN)/synthgen preview $(DEMO_OUT) --out $(DEMO_OUT)/preview.png
	@echo "labelled set: $(DEMO_OUT)   preview sheet: $(DEMO_OUT)/preview.png"

test: install
	$(BIN)/python -m pytest
