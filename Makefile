# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CE_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

# torch is pinned and installed first: 2.13.0 is the local CPU wheel here, and a looser
# requirement would pull the newest CUDA build (several GB). constraints.txt pins every
# other package to versions known to work together, so pip does not spend minutes
# backtracking through textattack's and flair's dependencies.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "warning: could not install chromium; the report rendering test will skip"
	touch $@

demo: install
	$(BIN)/ce demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check engine extractors tests bench
	$(BIN)/ruff format --check engine extractors tests bench

bench: install
	cd bench && for b in extract qa_pipeline neighbors knn_agreement attack float16 scale bundle checkpoints gpu; do \
		../$(BIN)/python $$b.py || exit 1; done

clean:
	rm -rf $(VENV) data/store
