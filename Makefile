# Two commands do everything: `make tour` (train every application, write a report)
# and `make test`. Each creates .venv on first use. torch is installed first, pinned,
# so that no other package pulls a multi-GB CUDA build of it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
OUT ?= tour

.PHONY: tour serve results test test-slow lint bench clean

$(BIN)/rnnkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Each run first installs the Debian packages of the bundled data where this user may
# (root or passwordless sudo; a no-op once they are there): see scripts/system-packages.sh.
tour: $(BIN)/rnnkit
	bash scripts/system-packages.sh
	$(BIN)/rnnkit tour --out $(OUT)

# The models `make tour` kept (OUT/models/<app>) and the experiment's plot, with the web
# page at http://127.0.0.1:8000/
serve: $(BIN)/rnnkit
	$(BIN)/rnnkit serve $(OUT)/models/* $(OUT)/experiment

# Every README table from its documented command (hours on 2 cores): RESULTS/<table>/metrics.json
RESULTS ?= results
results: $(BIN)/rnnkit
	bash scripts/system-packages.sh
	bash scripts/results.sh $(RESULTS)

test: $(BIN)/rnnkit
	bash scripts/system-packages.sh
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/python -m pytest -n 2 -q

test-slow: $(BIN)/rnnkit
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/rnnkit
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(BIN)/rnnkit
	$(BIN)/python benchmarks/layers.py
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) build *.egg-info
