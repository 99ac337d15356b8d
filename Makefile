# The two commands: `make run` (set up and serve the embedded default) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test lint install

# With no configuration given, the advertised base URL follows where `make run` listens.
ifeq ($(origin MUSTER_BASE_URL)$(origin MUSTER_CONFIG),undefinedundefined)
run: export MUSTER_BASE_URL = http://$(HOST):$(PORT)
endif

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python3 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/python manage.py migrate --noinput
	$(VENV)/bin/python manage.py ensureadmin
	rm -f "$${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}"/*.db  # counts of a previous run must not carry over
	$(VENV)/bin/uvicorn muster_project.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) --lifespan off --timeout-graceful-shutdown 5 --no-proxy-headers

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
