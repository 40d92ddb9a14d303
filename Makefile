# The two commands the README promises: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint format messages bench-api bench-notify bench-pdf bench-analytics bench-sync clean peers-up peers-down test-peers

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	mkdir -p var
	DEBUG=false STATIC_MANIFEST=false SECRET_KEY=$${SECRET_KEY:-test-only-secret} ALLOWED_HOSTS=$${ALLOWED_HOSTS:-testserver,localhost,127.0.0.1} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-sqla+sqlite:///$(CURDIR)/var/test-celery-broker.sqlite3} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Russian catalogue of the UI: collect new strings, fill the ones locale/ru_ui.py knows, compile the .mo
# (committed, so installs need no gettext). Needs gettext's xgettext/msgfmt.
messages: $(STAMP)
	DEBUG=true HUB_READ_DOT_ENV=false $(BIN)/python manage.py makemessages -l ru --no-location \
		--ignore=tests --ignore=scripts --ignore=deploy --ignore=docs --ignore='templates/invoicing/*' --ignore=$(VENV) --ignore=locale
	$(BIN)/python locale/ru_ui.py
	DEBUG=true HUB_READ_DOT_ENV=false $(BIN)/python manage.py compilemessages -l ru --ignore=$(VENV)

clean:
	rm -rf $(VENV) var

# Installs, migrates, seeds the demo on first run, prints admin credentials once, and serves
# web + Celery worker + beat in the foreground (Ctrl-C stops all). See scripts/run.sh.
run: $(STAMP)
	bash scripts/run.sh

# PostgreSQL, 100,000 clients, 2 gunicorn workers, wrk on loopback. See scripts/bench_api.sh.
bench-api: $(STAMP)
	bash scripts/bench_api.sh

# PostgreSQL + Redis, a real Celery worker: 200 payments ► matched ► in-app + signed webhook. See scripts/bench_notify.py.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/hub_bench_notify
BENCH_BROKER_URL   ?= redis://127.0.0.1:6379/6
bench-notify: $(STAMP)
	pg_isready -h 127.0.0.1 -q || pg_ctlcluster 15 main start
	redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""
	dropdb -h 127.0.0.1 -U postgres --if-exists $(notdir $(BENCH_DATABASE_URL))
	createdb -h 127.0.0.1 -U postgres $(notdir $(BENCH_DATABASE_URL))
	SECRET_KEY=$${SECRET_KEY:-bench-only-secret} ALLOWED_HOSTS=localhost STATIC_MANIFEST=false \
	DATABASE_URL=$(BENCH_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) LOG_FORMAT=plain \
		$(BIN)/python scripts/bench_notify.py

# Median ms per one-page and five-page invoice after warm-up, and 1,000 invoices over 2 processes.
bench-pdf: $(STAMP)
	SECRET_KEY=$${SECRET_KEY:-bench-only} ALLOWED_HOSTS=$${ALLOWED_HOSTS:-localhost} STATIC_MANIFEST=false \
		$(BIN)/python scripts/bench_pdf.py

# PostgreSQL hub_bench_analytics: 1,000,000 deals generated in SQL (reused on later runs; pass
# BENCH_ARGS=--regenerate to start again), rollups rebuilt, every figure timed. See scripts/bench_analytics.py.
bench-analytics: $(STAMP)
	$(BIN)/python scripts/bench_analytics.py $(BENCH_ARGS)

# Real peers for the connector tests: Tryton 8.2 on 127.0.0.1:8001 and BottleCRM (django-crm 1.35) on :8002,
# work dirs under .peers/ (cold ~3-4 min, warm ~15 s). See scripts/peers/.
peers-up:
	bash scripts/peers/up.sh

peers-down:
	bash scripts/peers/down.sh

# The connectors against the real peers (started by `make peers-up`).
test-peers: $(STAMP)
	. .peers/env.sh && DEBUG=false STATIC_MANIFEST=false SECRET_KEY=$${SECRET_KEY:-test-only-secret} \
	ALLOWED_HOSTS=$${ALLOWED_HOSTS:-testserver,localhost,127.0.0.1} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-sqla+sqlite:///$(CURDIR)/var/test-celery-broker.sqlite3} \
		$(BIN)/python -m pytest -m peers tests/sync/peers $(PYTEST_ARGS)

# PostgreSQL hub_bench_sync (recreated each run): 100,000 clients from a CSV file through the csv connector
# and the sync engine — first load, the same file unchanged, 1 % changed — records/s and peak RSS; a
# child run with 50,000 rows first shows memory is flat in the file's size; the COPY floor is the same
# rows stored again by COPY alone, the bound on any first load. See scripts/bench_sync.py.
BENCH_SYNC_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/hub_bench_sync
bench-sync: $(STAMP)
	pg_isready -h 127.0.0.1 -q || pg_ctlcluster 15 main start
	SECRET_KEY=$${SECRET_KEY:-bench-only-secret} ALLOWED_HOSTS=localhost STATIC_MANIFEST=false LOG_FORMAT=plain \
	DATABASE_URL=$(BENCH_SYNC_DATABASE_URL) \
		$(BIN)/python scripts/bench_sync.py --memory-check $(BENCH_ARGS)
