# The two commands: `make run` (quick start) and `make test` (the whole suite, as CI runs it);
# `make demo` is `make run` with an example news site beside it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build. The
# optional runtimes ONNX Runtime and OpenVINO come too (about 300 MB installed): with them the
# workers' `auto` engine can pick the fastest way to run a Detoxify model here. Where
# PyPI's default wheel is a CUDA one and you have internet, add the CPU index, e.g.
#   make run TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=

.PHONY: run demo test lint format bench-spam bench-learning bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e '.[onnx,openvino]'
	touch $@

# The npm clients the tests drive (tests/clients/package-lock.json) come with the test extras.
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml tests/clients/package-lock.json
	$(BIN)/pip install --quiet -e '.[test]'
	npm ci --silent --no-audit --no-fund --prefix tests/clients
	touch $@

run: $(VENV)/.installed
	$(BIN)/moderation up

# `make run` plus the example newsroom (examples/newsroom): an article whose comment box the
# service moderates. Prints the article's URL, the moderation page's and a moderator's login.
demo: $(VENV)/.installed
	$(BIN)/moderation up --demo

# The 30 slowest tests are listed at the end: where the suite's time goes, in every CI log.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q --durations=30

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-spam: $(VENV)/.installed-test
	$(BIN)/python bench/spam_eval.py

# Per-site learning through the real API and a worker (about 15 minutes; needs redis-server):
# spam labels per left-out YouTube video, the Davidson moderators' scenario, seeds 0-2. Prints
# markdown tables; writes bench/results/learning-eval-<date>.json. `--quick` is a smoke run.
bench-learning: $(VENV)/.installed-test
	$(BIN)/python -m bench.learning_eval

# Everything the "fast by default" issue measures, in one run (bench/suite.py; about 25 minutes
# on 2 cores, more the first time, when the engines' exports are built; needs redis-server):
# naive RQ; raw scoring per engine (runtime x precision, 1 and 2 processes); the service with
# its defaults (bert-base twin, 2 workers); Perspective checks and Coral calls behind a backlog;
# the embedded model through the batch endpoint. Prints one markdown table with the date and
# CPU; writes bench/results/suite-<date>.json and suite-latest.json. `--quick` is a smoke run.
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.suite

# Long runs (about 10 minutes; needs redis-server): the fault tests marked `soak` (an overload
# of 20,000 comments with a worker killed), then 20,000 comments through the running service,
# one POST each (bench/soak.py). Prints a table; writes bench/results/soak-<date>.json.
soak: $(VENV)/.installed-test
	$(BIN)/pytest -q -m soak
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
