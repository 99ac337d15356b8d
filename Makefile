# The two commands: `make run` (set up and serve the embedded default) and `make test` (the whole suite).
# `make test-fast` runs the suite without its end-to-end and browser tests.
PYTHON ?= python3
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test test-fast lint install

# With no configuration given, the advertised base URL follows where `make run` listens. An http base URL must be
# loopback, so listening anywhere else (HOST=0.0.0.0, a LAN address) advertises 127.0.0.1 and says so: machines
# other than this one need MUSTER_BASE_URL (or baseUrl) set to the public https URL in front of the site.
LOOPBACK_HOST := $(patsubst ::1,[::1],$(filter 127.% localhost ::1,$(HOST)))
ifeq ($(origin MUSTER_BASE_URL)$(origin MUSTER_CONFIG),undefinedundefined)
run: export MUSTER_BASE_URL = http://$(or $(LOOPBACK_HOST),127.0.0.1):$(PORT)
ifeq ($(LOOPBACK_HOST),)
BASE_URL_NOTE = Listening on $(HOST), advertising http://127.0.0.1:$(PORT): for other machines set MUSTER_BASE_URL to the public https URL.
endif
endif

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python3 3.11 or newer is needed")'
	@echo "== Installing into $(VENV) (first run, or requirements.txt changed: a minute or two) =="
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --progress-bar on -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/python manage.py migrate --noinput
	@$(if $(BASE_URL_NOTE),echo "note: $(BASE_URL_NOTE)")
	@$(VENV)/bin/python manage.py welcome
	rm -f "$${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}"/*.db  # counts of a previous run must not carry over
	$(VENV)/bin/uvicorn muster_project.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) --lifespan off --no-proxy-headers --http muster_project.http_deadlines:DeadlineProtocol

# The whole suite on a test database created afresh (CI runs this).
test: install
	$(VENV)/bin/pytest --create-db

# The inner loop: everything but the tests that start servers and browsers (e2e, browser), in well under a minute.
# On PostgreSQL (DATABASE_URL) the test database is kept and reused between runs (no effect on SQLite in memory).
test-fast: install
	$(VENV)/bin/pytest --reuse-db -m "not e2e and not browser"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
