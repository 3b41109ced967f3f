# The two commands the README starts with. Both set up what they need themselves.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Keep Prefect's state inside the project (git-ignored) and off the network.
export PREFECT_HOME := $(CURDIR)/.state/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: demo test test-fast lint bench bench-generator clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import tuner, locust, prefect, moto, boto3, pandas, matplotlib"
	mkdir -p $(PREFECT_HOME)
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	@$(VENV)/bin/tuner demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	mkdir -p $(PREFECT_HOME)
	$(VENV)/bin/pytest

# Unit and functional tiers only: no load test, no server process, no flow.
test-fast: lint
	mkdir -p $(PREFECT_HOME)
	$(VENV)/bin/pytest tests/unit tests/functional -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/accuracy.py --seed 11

bench-generator: $(STAMP)
	$(PY) benchmarks/generator.py

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
