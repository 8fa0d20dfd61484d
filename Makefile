# Two entry points for newcomers (see README): `make demo` and `make test` (`make test-fast`: unit tests only).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# one directory per demo run, fixed once per make invocation
DEMO_DIR := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install demo test test-fast bench

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --constraint constraints.txt --editable '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python train.py hydra.run.dir=$(DEMO_DIR)
	$(BIN)/python evaluate.py ckpt_path=$(DEMO_DIR)/checkpoints/best.ckpt output_dir=$(DEMO_DIR)/evaluation

# two workers (pytest-xdist): the e2e runs are mostly single-threaded imports and tiny trainings, so two
# of them share a 2-core machine well; --dist loadfile keeps a module (and its trained fixtures) on one
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# the fast lane: tests/unit only (every test under tests/e2e is marked e2e), one to two minutes
test-fast: install
	$(BIN)/python -m pytest -m "not e2e"

bench: install
	$(BIN)/python benchmarks/bench.py
