# The two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast browser-setup bench clean

setup: $(STAMP)

# torch==2.13.0 is installed first, alone, when no torch is present: the CPU wheel on this
# machine's disk. The project's range (torch>=2.4) is then already satisfied, so pip never
# pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/losslab tour

test: setup
	$(PY) -m pytest

# Browser tests need Debian's Chromium (root: apt-get install -y chromium) and playwright
# from PyPI, driven through /usr/bin/chromium; no browser is ever downloaded.
browser-setup: setup
	$(PY) -m pip install -q -e ".[test,browser]"

bench: setup
	$(PY) -m pip install -q -e ".[bench]"

clean:
	rm -rf $(VENV) losslab-runs build *.egg-info src/*.egg-info
