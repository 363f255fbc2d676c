# recbook — the two commands of the README:
#   make course   create .venv, install recbook with pinned versions, run every notebook (quick profile)
#   make test     create .venv if needed, run the unit tests and the notebooks under nbval
#   make unit     the quick unit tests only (not the ones marked slow, not the notebooks)
#   make lint     ruff over the code, and import-linter over the package's layers (both configured in pyproject.toml)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the venv's python with the venv's tools (redis-server, promtool from tools/system_deps.sh) on PATH, for every target
# that runs notebooks or tests
RUN    := PATH="$(abspath $(VENV))/tools:$$PATH" $(BIN)/python

# MovieLens-100k may not be redistributed; use a local copy when one sits next to the repo
# (../shared/data/movielens/ml-100k), or whatever RECBOOK_MOVIELENS_DIR already points to.
ML100K := $(firstword $(wildcard ../shared/data/movielens/ml-100k))
export RECBOOK_MOVIELENS_DIR ?= $(ML100K)

.PHONY: setup course test unit lint notebooks student release-check site site-check clean

# redis-server (shared rate limits) and promtool (alert rules) from Debian's packages, best effort and quick when they
# are there already (tools/system_deps.sh): checked on every setup, so a later `sudo make setup` can still add them
setup: $(VENV)/.installed
	@bash tools/system_deps.sh $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[dev]"
	$(BIN)/python -c "import recbook, torch, transformers; print('recbook', recbook.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
	touch $@

# NOTEBOOKS="00 01": only the notebooks whose names start with these prefixes (default: all of them)
course: setup
	$(RUN) tools/run_course.py $(NOTEBOOKS)

test: setup
	$(RUN) -m pytest --nbval-lax --nbval-cell-timeout=1200 tests notebooks

# Everything in tests/ except @pytest.mark.slow (multi-process, torch.compile, training runs): `make test` runs those too.
unit: setup
	$(RUN) -m pytest -m "not slow" tests

lint: setup
	$(BIN)/python -m ruff check recbook recbook_course tests tools site
	$(BIN)/lint-imports

notebooks: setup
	$(RUN) -m pytest --nbval-lax --nbval-cell-timeout=1200 notebooks

student: setup
	$(BIN)/python tools/make_student_versions.py

# Classroom (classroom/README.md): nbgrader release versions in build/classroom/release/ (ASSIGNMENT=01_cross_entropy: one
# notebook), and `make grade SUBMISSIONS=DIR`: autograde DIR/<learner>/<notebook>.ipynb with the hidden tests into DIR/grades.csv
# (ASSIGNMENT: only those notebooks; TIMEOUT: seconds per cell, default 900).
.PHONY: classroom grade
classroom: setup
	$(RUN) tools/classroom.py release $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)")

grade: setup
	$(if $(SUBMISSIONS),,$(error make grade needs SUBMISSIONS=DIR, a folder with one sub-folder of notebooks per learner))
	$(RUN) tools/classroom.py grade "$(SUBMISSIONS)" $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)") $(if $(TIMEOUT),--timeout $(TIMEOUT))

# Build the sdist and wheel, install the wheel into a clean venv as the Colab cell does (torch first, lower bounds only,
# no constraints.txt) and execute notebooks 00 and 01 there (tools/release_check.py; about 1-2 minutes).
release-check: setup
	$(BIN)/python tools/release_check.py

# The course website into build/site/html, offline: Sphinx + MyST-NB + sphinx-book-theme (Jupyter Book 1's engine) from the
# executed notebooks, warnings as errors, then every internal link checked (site/build.py, site/README.md).
site: setup
	$(BIN)/python site/build.py

# Every page of the built site opened in headless Chromium (Debian's package, installed here if missing, as root):
# fails on a page that does not render, a local image that does not load, a chapter without its Colab button, or a
# console error; screenshots of the course map and a chapter, and report.json, in build/site-check (tools/site_check.py).
site-check: site
	@bash tools/system_deps.sh $(VENV) chromium
	$(BIN)/python tools/site_check.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
