# The two commands the README promises: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint format bench-api bench-analytics clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	mkdir -p var
	STATIC_MANIFEST=false SECRET_KEY=$${SECRET_KEY:-test-only-secret} ALLOWED_HOSTS=$${ALLOWED_HOSTS:-testserver,localhost,127.0.0.1} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-sqla+sqlite:///$(CURDIR)/var/test-celery-broker.sqlite3} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var

# Installs, migrates, seeds the demo on first run, prints admin credentials once, and serves
# web + Celery worker + beat in the foreground (Ctrl-C stops all). See scripts/run.sh.
run: $(STAMP)
	bash scripts/run.sh

# PostgreSQL, 100,000 clients, 2 gunicorn workers, wrk on loopback. See scripts/bench_api.sh.
bench-api: $(STAMP)
	bash scripts/bench_api.sh

# PostgreSQL hub_bench_analytics: 1,000,000 deals generated in SQL (reused on later runs; pass
# BENCH_ARGS=--regenerate to start again), rollups rebuilt, every figure timed. See scripts/bench_analytics.py.
bench-analytics: $(STAMP)
	$(BIN)/python scripts/bench_analytics.py $(BENCH_ARGS)
