# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run test index install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU torch wheel first: anything that pulls `torch` later then finds it satisfied.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,cluster]'
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

index/manifest.json: | $(STAMP)
	$(BIN)/qa build --source seeds --index index

index: index/manifest.json

run: $(STAMP) index/manifest.json
	$(BIN)/python app.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
