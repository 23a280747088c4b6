# Two entry points for a fresh machine: `make demo` and `make test`.
# TORCH pins the torch build installed before endopat (the CPU wheel here; use e.g.
# TORCH='torch --index-url https://download.pytorch.org/whl/cu124' on a GPU machine).
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY      = $(VENV)/bin/python
# Label Studio in its own environment (its pins are not endopat's): the serve tests start it
LS_VENV ?= .venv-ls
# reference implementations the tests compare against, outside endopat's environment (timm needs a
# torchvision that cannot run beside this torch: it is installed without dependencies, used only by
# tests/reference/timm_caformer.py in a process of its own)
REF    ?= .reference
TIMM   ?= timm==1.0.31

.PHONY: install label-studio reference demo demo-quick test clean

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

# Label Studio for tests/test_serve_label_studio.py; where it cannot be installed those tests skip, saying so
label-studio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	@($(PYTHON) -m venv $(LS_VENV) && $(LS_VENV)/bin/python -m pip install -q label-studio==1.23.2 && touch $@) \
	  || echo "warning: Label Studio could not be installed; its end-to-end tests will be skipped"

reference: $(REF)/.installed

$(REF)/.installed: $(VENV)/.installed
	@($(PY) -m pip install -q --no-deps --target $(REF) $(TIMM) && touch $@) \
	  || echo "warning: timm could not be installed in $(REF); the CaFormer reference check will be skipped"

test: install label-studio reference
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(LS_VENV) $(REF) runs
