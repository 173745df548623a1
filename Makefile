# make quickstart   set up .venv if needed, then run `longrec quickstart`
# make test         set up .venv if needed, then run the tests
# The set-up is scripts/setup.sh; it runs again only when .venv is missing or pyproject.toml
# (or the script) changed since the last set-up, so re-running is quick.
# LONGREC_DATA_DIR (the datasets folder) defaults to ../shared/datasets when that folder exists.

VENV := .venv
STAMP := $(VENV)/.longrec-setup
ifeq ($(origin LONGREC_DATA_DIR), undefined)
  ifneq ($(wildcard ../shared/datasets),)
    export LONGREC_DATA_DIR := $(abspath ../shared/datasets)
  endif
endif

.PHONY: setup quickstart test

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

quickstart: $(STAMP)
	$(VENV)/bin/longrec quickstart

test: $(STAMP)
	$(VENV)/bin/python -m pytest
