# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CE_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test lint bench clean

# `make install` also teaches the venv's activate scripts (bash/zsh, fish, csh) the data
# folder: after `source .venv/bin/activate`, `ce` reads CE_DATA_DIR as these recipes do,
# unless it is set already. Each install rewrites its one marked line in each script
# (`python -m venv` rewrites the scripts themselves); a missing folder writes none.
MARK := \# ce: default CE_DATA_DIR (make install)

install: $(VENV)/.installed
	@for f in $(BIN)/activate $(BIN)/activate.fish $(BIN)/activate.csh; do \
		[ ! -f $$f ] || { sed -i.bak '/$(MARK)/d' $$f && rm -f $$f.bak; }; done
	@[ ! -d '$(CE_DATA_DIR)' ] || { \
		printf '[ -n "$${CE_DATA_DIR:-}" ] || export CE_DATA_DIR=%s  %s\n' "'$(CE_DATA_DIR)'" '$(MARK)' \
			>> $(BIN)/activate; \
		[ ! -f $(BIN)/activate.fish ] || printf 'set -q CE_DATA_DIR; or set -gx CE_DATA_DIR %s  %s\n' \
			"'$(CE_DATA_DIR)'" '$(MARK)' >> $(BIN)/activate.fish; \
		[ ! -f $(BIN)/activate.csh ] || printf 'if (! $$?CE_DATA_DIR) setenv CE_DATA_DIR %s  %s\n' \
			"'$(CE_DATA_DIR)'" '$(MARK)' >> $(BIN)/activate.csh; }

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
	cd bench && for b in extract decoder qa_pipeline neighbors knn_agreement noise_floor cka attack float16 scale bundle ingest checkpoints gpu; do \
		../$(BIN)/python $$b.py || exit 1; done

clean:
	rm -rf $(VENV) data/store
