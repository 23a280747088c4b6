# Two entry points for a fresh machine: `make demo` and `make test`.
# TORCH pins the torch build installed before endopat (the CPU wheel here; use e.g.
# TORCH='torch --index-url https://download.pytorch.org/whl/cu124' on a GPU machine).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY      = $(VENV)/bin/python

.PHONY: install demo demo-quick test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/endopat demo --out runs/demo

demo-quick: install
	$(VENV)/bin/endopat demo --quick --out runs/demo-quick

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
