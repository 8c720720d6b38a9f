# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_PORT ?= 19092
DEMO_PORT ?= 9092

.PHONY: install demo test lint unit bench clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: run make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The image workflow end to end: engine, workers and client in one process, on a local
# broker (or $$INFINITIC_KAFKA).
demo: $(INSTALLED)
	scripts/with-kafka.sh .infinitic/kafka $(DEMO_PORT) $(BIN)/python examples/images.py

# Lint, then every test against a real broker: $$INFINITIC_KAFKA or one started for the run.
test: lint $(INSTALLED)
	scripts/with-kafka.sh .infinitic/kafka-test $(TEST_PORT) $(BIN)/pytest $(PYTEST_ARGS)

# Both benchmarks (quick versions), each next to its raw-Kafka floor, on a local broker.
bench: $(INSTALLED)
	scripts/with-kafka.sh .infinitic/kafka-bench $(TEST_PORT) sh -c '$(BIN)/python benchmarks/streams.py --quick && $(BIN)/python benchmarks/workflows.py --quick'

# Only the tests that need no Kafka.
unit: $(INSTALLED)
	$(BIN)/pytest -m 'not kafka' $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .infinitic .pytest_cache .ruff_cache .hypothesis
