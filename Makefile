# Two commands matter: `make demo` (set up and run the platform) and `make test`.
# Everything runs from the project's own virtualenv; nothing is installed globally
# except the system packages `make system` adds when they are missing.

VENV ?= .venv
# The interpreter the virtualenv is built on. Its build matters: the producer runs 13 to 25 %
# faster on Debian's CPython than on a pyenv build made without --enable-optimizations
# (docs/benchmarks.md), so the distribution's python3 is preferred when it is 3.11 or newer and
# can make a virtualenv (Debian's python3-venv brings ensurepip).
# `make setup PYTHON=...` chooses another.
SYSTEM_PYTHON_OK := $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo yes)
PYTHON ?= $(if $(SYSTEM_PYTHON_OK),/usr/bin/python3,python3)
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: system install setup demo test lint down clean

system:
	bash .ci/system-packages.sh

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,deploy]'
	touch $@

install: $(VENV)/.installed

setup: system install
	$(BIN)/wikipulse setup
	bash .ci/tools.sh

# DEMO_ARGS: e.g. --source replay:PATH, --speed 10, --no-dashboard (see wikipulse up --help).
demo: setup
	$(BIN)/wikipulse up --lab $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check wiki_lib tests
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -ra $(PYTEST_ARGS)

down:
	$(BIN)/wikipulse down

clean: down
	rm -rf $(VENV) streaming/jvm/lib .tools .venv-tools
