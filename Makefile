# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_PORT ?= 19092
# make demo: where its local broker listens when it starts one (its controller: port+100), where
# that broker keeps its pids, data and logs, where the demo keeps its state; KEEP_KAFKA=0 stops
# the broker at the end; DEMO_ARGS, more options (e.g. DEMO_ARGS="--timeout 120").
DEMO_PORT ?= 9092
DEMO_RUN_DIR ?= .infinitic/kafka
DEMO_DIR ?= .infinitic/demo
KEEP_KAFKA ?= 1
DEMO_ARGS ?=
# make demo-engine serves the dashboard of the demo's namespace on 127.0.0.1:DASHBOARD_PORT (0: none).
DASHBOARD_PORT ?= 8080
DEMO := $(BIN)/python -m examples --port $(DEMO_PORT) --run-dir $(DEMO_RUN_DIR) --demo-dir $(DEMO_DIR) --dashboard-port $(DASHBOARD_PORT)

.PHONY: install demo demo-engine demo-down test lint unit bench clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: run make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The image workflows end to end (engine, workers and client in one process, examples/demo.py)
# in namespace `demo`, state in $(DEMO_DIR). Kafka: $$INFINITIC_KAFKA (nothing started or
# stopped), else the local broker of $(DEMO_RUN_DIR), started on DEMO_PORT when it does not run.
# That broker keeps running for the next `make demo` (which reuses it, and its workflows) and for
# the describe/history commands printed at the end; `make demo KEEP_KAFKA=0` stops it at the end.
demo: $(INSTALLED)
	@$(DEMO) $(if $(filter 0 no false,$(KEEP_KAFKA)),--stop-kafka) $(DEMO_ARGS)

# The demo's engine and workers alone, until Ctrl-C: what answers `infinitic-streams describe`
# and `history` about the demo's workflows; and the dashboard, to look at them in a browser.
demo-engine: $(INSTALLED)
	@$(DEMO) --serve $(DEMO_ARGS)

# Stop the demo's local broker (its topics and workflows go with it).
demo-down: $(INSTALLED)
	@$(BIN)/infinitic-streams kafka down --run-dir $(DEMO_RUN_DIR)

# Lint, then every test against a real broker: $$INFINITIC_KAFKA or one started for the run.
test: lint $(INSTALLED)
	scripts/with-kafka.sh .infinitic/kafka-test $(TEST_PORT) $(BIN)/pytest $(PYTEST_ARGS)

# The benchmarks (quick versions), each next to its raw-Kafka floor (scale.py: at scale,
# none), on a local broker.
bench: $(INSTALLED)
	scripts/with-kafka.sh .infinitic/kafka-bench $(TEST_PORT) sh -c '$(BIN)/python benchmarks/streams.py --quick && $(BIN)/python benchmarks/workflows.py --quick && $(BIN)/python benchmarks/visibility.py --quick && $(BIN)/python benchmarks/scale.py --quick'

# Only the tests that need no Kafka.
unit: $(INSTALLED)
	$(BIN)/pytest -m 'not kafka' $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Stops the demo's broker first: deleting its run dir under it would leave it running unseen.
clean:
	@if [ -x $(BIN)/infinitic-streams ]; then $(BIN)/infinitic-streams kafka down --run-dir $(DEMO_RUN_DIR) >/dev/null; fi
	rm -rf $(VENV) .infinitic .pytest_cache .ruff_cache .hypothesis
