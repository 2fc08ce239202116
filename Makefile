# `make demo` and `make test` set everything up in .venv, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp

.PHONY: setup install demo test lint test-python test-notebooks test-rust bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The tests run against the installed package (not the source tree): reinstall it.
install: setup
	$(PY) -m pip install --quiet --no-deps --force-reinstall .

demo: install
	$(PY) scripts/run_notebook.py notebooks/01_quickstart.ipynb

lint: setup
	$(VENV)/bin/ruff check rustcall_magic tests benchmarks scripts setup.py
	$(VENV)/bin/lint-imports

test-python: install
	RUSTCALL_TEST_INSTALLED=1 $(VENV)/bin/pytest tests

# Notebooks run in kernels of their own: give them a private cache and IPython dir.
test-notebooks: install
	tmp=$$(mktemp -d) && RUSTCALL_CACHE_DIR=$$tmp/cache IPYTHONDIR=$$tmp/ipython \
	    $(VENV)/bin/pytest --nbval notebooks -p no:cacheprovider; status=$$?; rm -rf $$tmp; exit $$status

# cargo test covers the pure-Rust core; the CPython face is type-checked for both
# interpreter families (rc_lasti: Python 3.11+), as rustcall_magic builds it.
test-rust:
	cargo test --quiet --tests --manifest-path rust_runtime/Cargo.toml
	cargo check --quiet --features python --manifest-path rust_runtime/Cargo.toml
	RUSTFLAGS="--cfg rc_lasti" cargo check --quiet --features python --manifest-path rust_runtime/Cargo.toml

test: lint test-python test-notebooks test-rust

# The peers (numba, Cython, cffi) come with the bench extra.
bench: install
	$(PY) -m pip install --quiet '.[bench]'
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info rust_runtime/target .pytest_cache .ruff_cache
	rm -rf labextension/node_modules labextension/lib labextension/build labextension/prebuilt
