# The two commands the README starts with. Both set up what they need themselves.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The installer: uv, itself pinned; every other version comes from requirements.lock.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv

# Keep Prefect's state inside the project (git-ignored) and off the network.
export PREFECT_HOME := $(CURDIR)/.state/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
# Python may cache compiled modules (git-ignored __pycache__/) even where the environment
# says not to: the suite starts dozens of interpreters (test workers, `tuner` and Locust
# subprocesses), each of which would compile this project's modules, and pytest's
# rewritten test modules, from source again.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test test-fast lint bench bench-offline bench-generator clean lock

$(UV):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>&1 | grep -v "^WARNING: Location" || true
	test -x $(UV)

# Exactly the locked versions (no resolution), then the package itself, editable; then an
# offline resolve against what is installed fails if pyproject.toml (extras included) asks
# for something requirements.lock lacks.
$(STAMP): pyproject.toml requirements.lock | $(UV)
	$(UV) pip install --quiet --python $(PY) --no-deps -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	$(UV) pip install --quiet --python $(PY) --dry-run --no-index -e '.[dev]' \
		|| { echo "error: requirements.lock is behind pyproject.toml: run make lock"; exit 1; }
	mkdir -p $(PREFECT_HOME)
	$(PY) -c "import tuner, locust, prefect, moto, boto3, pandas, matplotlib"
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	@$(VENV)/bin/tuner demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Everything, in two passes over the whole suite: the in-process tests spread over the
# cores (pytest-xdist), then the statistical studies (which spread their own runs over the
# cores) and the integration tier one test at a time (load tests must not share the CPU:
# their timings would lie).
test: lint
	mkdir -p $(PREFECT_HOME)
	$(VENV)/bin/pytest -m "not slow and not integration" -n auto
	$(VENV)/bin/pytest -m "slow or integration"

# Unit and functional tiers only: no load test, no server process, no flow.
test-fast: lint
	mkdir -p $(PREFECT_HOME)
	$(VENV)/bin/pytest tests/unit tests/functional -m "not slow" -n auto

bench: $(STAMP)
	$(PY) benchmarks/accuracy.py --seed 11

# The same zoo offline (simulated queue, virtual time), several seeds per case: minutes.
bench-offline: $(STAMP)
	$(PY) benchmarks/offline_zoo.py --seeds 6

bench-generator: $(STAMP)
	$(PY) benchmarks/generator.py

# Deliberately re-resolve after editing pyproject.toml's dependencies: pins stay where they
# still fit; `make lock UPGRADE=--upgrade` moves everything to the newest. Commit the result.
lock: | $(UV)
	$(UV) pip compile --quiet pyproject.toml --extra dev --universal --python-version 3.11 \
		--custom-compile-command "make lock" $(UPGRADE) -o requirements.lock

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
