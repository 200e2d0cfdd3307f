# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
SEED_FILES := $(wildcard seeds/*)
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run test index install clean

$(BIN)/python:
	@echo "==> Creating the virtual environment $(VENV) (Python 3.11+)"
	$(PYTHON) -m venv $(VENV)

# What running needs, and nothing more. The CPU torch wheel first: anything that pulls `torch`
# later then finds it satisfied instead of downloading a multi-GB CUDA build.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> Installing qa and what it needs to run into $(VENV): torch (CPU), sentence-transformers,"
	@echo "    onnxruntime, faiss-cpu, gradio, trafilatura, pypdf and their dependencies."
	@echo "    The first time this downloads and installs about 2 GB and takes several minutes; later runs skip it."
	$(BIN)/pip install --upgrade --progress-bar off pip
	$(BIN)/pip install --progress-bar off torch==2.13.0
	$(BIN)/pip install --progress-bar off -e .
	$(BIN)/pip check
	touch $@

# The test extras on top: pytest, playwright (drives Debian's chromium), gradio_client, fpdf2, splitters.
$(TEST_STAMP): $(RUN_STAMP)
	@echo "==> Installing the test extras (pytest, playwright, gradio_client, fpdf2, other sentence splitters)"
	@echo "    and the cluster extra (ray[data,serve], about 700 MB) so the cluster tests run too"
	$(BIN)/pip install --progress-bar off -e '.[test,cluster]'
	$(BIN)/pip check
	touch $@

install: $(RUN_STAMP)

# index/ is not in git: it is built from seeds/ on first run and rebuilt when a seed file changes.
# Articles added with `qa add` or in the app live in index/ (pasted ones also as files in
# index/pasted/, which the rebuild reads), so users' writes never touch tracked files.
index/manifest.json: $(SEED_FILES) | $(RUN_STAMP)
	@echo "==> Building index/ from seeds/ (embeds every sentence; about a minute the first time)"
	$(BIN)/qa build --source seeds --index index
	touch $@

index: index/manifest.json

run: $(RUN_STAMP) index/manifest.json
	@echo "==> Starting the chat on http://127.0.0.1:$${QA_PORT:-7860} (loading the model takes a few seconds)"
	$(BIN)/python app.py

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
