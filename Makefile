# Two entry points do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: plan the bundled default example (no GPU, no cluster) into out/plan.yaml.
run: $(STAMP)
	$(VENV)/bin/planner solve --workload examples/default/workload.yaml \
	    --fleet examples/default/fleet.yaml -o out/plan.yaml

## Linters: ruff (style, imports, bug patterns) and mypy --strict (configured in pyproject.toml).
## Paths checked: all of solvers/, controllers/, profiles/ and planner/ (bench/ and tests/ are not).
LINT_PATHS := solvers/ controllers/ profiles/ planner/
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)

## The test suite (unit, property, end-to-end on emulated servers, notebooks), after the linters.
# Two workers, a test file per worker at a time (pytest-xdist --dist loadfile: a file's module fixtures are built
# once): half the suite waits on emulated servers and notebook kernels, so the CI machine's two cores overlap it.
test: lint
	sh tests/setup_prometheus.sh
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) bench/solve_scaling.py
	$(PY) bench/baselines.py

clean:
	rm -rf $(VENV) out build *.egg-info
