# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make demo   - environment, install, migrate, simulate + ingest a demo survey, simulated
#                 volunteers' votes + one aggregation, then run the Procfile's processes
#                 (web, a worker per queue, beat) and print a console login; PORT=8000
#   make test   - environment if needed, lint, migration check, security audit, unit tier,
#                 integration tier
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
DEMO_N ?= 5000
DEMO_VOLUNTEERS ?= 60
DEMO_VOTES ?= 1500
DEMO_FILE ?= data/demo_cosmos.fits
PORT ?= 8000
# Services for the integration tier (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672//
# Extra pytest options for the integration tier, e.g. PYTEST_FLAGS="-k 'not faults'".
PYTEST_FLAGS ?=

.PHONY: install demo test lint check audit unit integration browser bench clean messages

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# Translations of the volunteer pages (docs/volunteers.md "Languages"): refresh the catalogues
# in locale/ from the source (new strings arrive empty; translate them in the .po files), then
# compile the .mo files, which are committed (tests/test_i18n.py checks both).
LOCALES ?= es de
MESSAGES_IGNORE := --ignore=.venv --ignore=var --ignore=data --ignore=tests --ignore=bench \
	--ignore=notebooks --ignore=node_modules --ignore=client --ignore=test-artifacts
messages: install
	$(PY) manage.py makemessages $(addprefix -l ,$(LOCALES)) --no-obsolete --add-location=file \
		$(MESSAGES_IGNORE)
	$(PY) manage.py makemessages -d djangojs $(addprefix -l ,$(LOCALES)) --no-obsolete \
		--add-location=file $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages $(addprefix -l ,$(LOCALES)) --ignore=.venv

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

# Security audit (docs/deploy.md "Security audit"): bandit over labelapp/ and mlcore/ fails
# on any high-severity finding (configuration in pyproject.toml); pip-audit checks the pinned
# requirements.txt against PyPI's vulnerability data (needs the network) through
# tests/pip_audit_report.py, which prints how many packages were audited and how many NOT:
# it fails on a known vulnerability, and passes, saying so, when some could not be checked;
# AUDIT_STRICT=1 makes "not audited" a failure too. Waive an advisory only with a reason,
# one line per advisory:
#   PIP_AUDIT_WAIVERS += --ignore-vuln GHSA-xxxx-xxxx-xxxx  # why it does not apply; review by
PIP_AUDIT_WAIVERS :=
PIP_AUDIT_FLAGS ?=
audit: install
	$(PY) -m bandit -c pyproject.toml -r labelapp mlcore --severity-level high --quiet
	$(PY) tests/pip_audit_report.py -r requirements.txt --no-deps --disable-pip \
		$(PIP_AUDIT_FLAGS) $(PIP_AUDIT_WAIVERS)

unit: install
	$(PY) -m pytest -m "not integration"

# Runs against real PostgreSQL + Redis (+ RabbitMQ) when they answer; otherwise says so in one
# line. With REQUIRE_INTEGRATION=1 (CI) a skipped tier is a failure. The broker matrix: every
# integration test on Redis (broker + cache), then the tests that start Celery workers
# (marker `broker`) again with RabbitMQ as the broker (CELERY_BROKER_URL; Redis stays the cache).
INTEGRATION_ENV = DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)"
integration: install
	@if $(PY) tests/services_reachable.py "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)" "$(TEST_AMQP_URL)"; then \
		echo "integration tier, broker: Redis ($(TEST_REDIS_URL))"; \
		$(INTEGRATION_ENV) $(PY) -m pytest -m integration $(PYTEST_FLAGS) && \
		echo "integration tier, broker: RabbitMQ ($(TEST_AMQP_URL)), tests marked broker" && \
		$(INTEGRATION_ENV) CELERY_BROKER_URL="$(TEST_AMQP_URL)" \
			$(PY) -m pytest -m "integration and broker" $(PYTEST_FLAGS); \
	else \
		echo "SKIPPED integration tier: PostgreSQL/Redis/RabbitMQ not reachable at $(TEST_DATABASE_URL) / $(TEST_REDIS_URL) / $(TEST_AMQP_URL); start them or set TEST_DATABASE_URL, TEST_REDIS_URL and TEST_AMQP_URL."; \
		test -z "$(REQUIRE_INTEGRATION)" || { echo "REQUIRE_INTEGRATION is set: failing."; exit 1; }; \
	fi

# Only the browser tests (headless Chromium via Playwright; they also run in `unit`).
browser: install
	$(PY) -m pytest -m browser

test: lint check audit unit integration

demo: install
	$(PY) manage.py migrate --no-input
	@test -f $(DEMO_FILE) || $(PY) manage.py simulate_survey --n $(DEMO_N) --seed 1 --field cosmos --out $(DEMO_FILE)
	$(PY) manage.py ingest $(DEMO_FILE)
	$(PY) manage.py seed_gold
	$(PY) manage.py simulate_volunteers --volunteers $(DEMO_VOLUNTEERS) --votes $(DEMO_VOTES) --if-no-votes
	$(PY) manage.py aggregate_votes
	$(PY) manage.py run_demo --port $(PORT)

bench: install
	$(PY) bench/bench_simulator.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_ingest_hetdex.py
	$(PY) bench/bench_store.py
	$(PY) bench/bench_votes.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
