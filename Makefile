# trainlab: `make demo` trains the embedded default; `make test` runs the suite. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint figures bench bench-peers clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/trainlab train examples/digits-mlp.yaml --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check src tests

# every picture of docs/observe.md, from small runs trained on the spot (~30 s, one thread; needs chromium)
figures: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python docs/figures.py

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python bench/bench.py --only 6 7 --as avx2
	$(BIN)/python bench/cpu_kinds.py
	$(BIN)/python bench/report.py --notes bench/notes.md

# peers (Lightning, Keras 3, fastai, skorch, Ignite) in their own .venv-peers; not part of `make test`
bench-peers:
	bash bench/peers/run.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
