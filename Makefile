# `make demo` and `make test` work on a fresh machine: they create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := runs/demo

.PHONY: demo demo-cyclegan demo-photos test install clean

$(BIN)/imgtrans: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/imgtrans

## Train pix2pix on the offline basemap dataset, evaluate on the held-out bands, write a contact sheet.
demo: $(BIN)/imgtrans
	$(BIN)/imgtrans train pix2pix --config configs/cpu_demo.toml --out $(DEMO_DIR) --overwrite
	$(BIN)/imgtrans eval --model $(DEMO_DIR)/model.safetensors --name demo --data basemap --split test \
		--compare zoo:basemap_a2b --baseline untrained --baseline identity \
		--out $(DEMO_DIR)/test --contact-sheet $(DEMO_DIR)/contact_sheet.png
	@echo "demo outputs: $(DEMO_DIR)/ (model.safetensors, previews/, test/, contact_sheet.png, metrics.jsonl)"
	@echo "report: $(DEMO_DIR)/index.html (open it in a browser: config, metrics, loss curves, previews)"

## Train CycleGAN on the offline unpaired basemap data; score both directions on the aligned test band.
demo-cyclegan: $(BIN)/imgtrans
	$(BIN)/imgtrans train cyclegan --config configs/cpu_cyclegan.toml --out runs/cyclegan --overwrite
	for d in AtoB BtoA; do \
		$(BIN)/imgtrans eval --model runs/cyclegan/model.safetensors --direction $$d --data basemap_unpaired \
			--split test --baseline untrained --baseline identity --contact-sheet runs/cyclegan/contact_$$d.png \
			|| exit 1; \
	done
	@echo "report: runs/cyclegan/index.html (open it in a browser: config, metrics, loss curves, previews)"

## Make pairs from offline satellite "photos" with `imgtrans data make`, train, score against baselines.
PHOTO_TASK ?= denoise
PHOTOS_DIR := runs/demo-photos
demo-photos: $(BIN)/imgtrans
	$(BIN)/python scripts/demo_photos.py $(PHOTOS_DIR)/photos
	$(BIN)/imgtrans data make $(PHOTO_TASK) $(PHOTOS_DIR)/photos $(PHOTOS_DIR)/data --size 128 --overwrite
	$(BIN)/imgtrans train pix2pix --config configs/cpu_photos.toml --data $(PHOTOS_DIR)/data \
		--out $(PHOTOS_DIR)/run --overwrite
	$(BIN)/imgtrans eval --model $(PHOTOS_DIR)/run/model.safetensors --data $(PHOTOS_DIR)/data --split test \
		--baseline untrained --baseline identity --out $(PHOTOS_DIR)/run/test \
		--contact-sheet $(PHOTOS_DIR)/contact_sheet.png > $(PHOTOS_DIR)/metrics.txt; \
		status=$$?; cat $(PHOTOS_DIR)/metrics.txt; exit $$status
	@echo "demo-photos outputs: $(PHOTOS_DIR)/ (data/, run/, contact_sheet.png, metrics.txt)"
	@echo "report: $(PHOTOS_DIR)/run/index.html"

## Check the layers (.importlinter), then run the test suite.
test: $(BIN)/imgtrans
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
