# The two commands of the README. Both create .venv if missing and install the project into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test,tb]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH bash launch/demo.sh

test: $(STAMP)
	-bash tests/slurm/install_slurm.sh
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache
