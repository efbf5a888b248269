# `make demo` and `make test` work on a fresh machine: they create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := runs/demo

.PHONY: demo test install clean

$(BIN)/imgtrans: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/imgtrans

## Train pix2pix on the offline basemap dataset, evaluate on the held-out bands, write a contact sheet.
demo: $(BIN)/imgtrans
	$(BIN)/imgtrans train pix2pix --config configs/cpu_demo.toml --out $(DEMO_DIR) --overwrite
	$(BIN)/imgtrans eval --model $(DEMO_DIR)/model.safetensors --data basemap --split test \
		--baseline untrained --baseline identity \
		--out $(DEMO_DIR)/test --contact-sheet $(DEMO_DIR)/contact_sheet.png
	@echo "demo outputs: $(DEMO_DIR)/ (model.safetensors, previews/, test/, contact_sheet.png, metrics.jsonl)"

## Run the test suite.
test: $(BIN)/imgtrans
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
