# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-rabbitmq lint format bench bench-ingest bench-validate bench-ingest-small bench-deliver bench-deliver-batch bench-deliver-single bench-memory bench-bisect bench-throttle bench-outage-recovery bench-fairness screenshots test-reliability clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Set everything up and serve on http://127.0.0.1:8000 (SQLite, in-process broker).
run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	OUTBOUND_ALLOWED_NETWORKS=127.0.0.0/8,::1/128 $(PY) manage.py run_embedded 127.0.0.1:8000

# The browser tests drive the system's Chromium: install it when missing and we can (root with
# apt-get); elsewhere those tests skip and say why.
CHROMIUM_INSTALL = test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	|| echo "Could not install chromium: the browser tests will be skipped."

## Set up and run the whole test suite (DATABASE_URL / DRAMATIQ_BROKER_URL when set).
test: $(STAMP)
	@$(CHROMIUM_INSTALL)
	@# exit 5 = no test collected (e.g. a filtered run): not a failure
	$(VENV)/bin/pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

## The suites whose outcome depends on the broker, again on the broker DRAMATIQ_BROKER_URL names
## (CI: RabbitMQ, after `make test` on Redis): an actor on a real worker, workers SIGKILLed
## mid-run, lost and duplicate messages, waits on delayed messages, worker hosts cut off from
## the broker and a broker that loses every message (docs/reliability.md says why these).
DURABLE = tests/pipelines/test_durable_retries.py
BROKER_SUITES = tests/tenancy/test_worker.py tests/pipelines/test_worker_crash.py \
	tests/pipelines/test_recovery.py \
	$(DURABLE)::test_an_outage_makes_the_run_wait_then_succeed_without_holding_the_worker \
	$(DURABLE)::test_a_waiting_run_is_cancelled_at_once_with_its_unsent_records_failed \
	$(DURABLE)::test_retry_after_keeps_the_next_request_away_for_that_long \
	$(DURABLE)::test_a_failing_destination_is_probed_by_one_run_and_its_recovery_resumes_all \
	$(DURABLE)::test_a_waiting_run_whose_message_was_lost_is_resumed_by_the_sweep \
	$(DURABLE)::test_at_most_the_organization_limit_of_runs_execute_at_once \
	tests/multihost/test_partitions.py::test_a_host_cut_off_from_the_broker_mid_run_still_finishes_it \
	tests/multihost/test_partitions.py::test_the_broker_restarted_mid_run_loses_no_record
test-rabbitmq: $(STAMP)
	@case "$$DRAMATIQ_BROKER_URL" in amqp://*|amqps://*) ;; \
	  *) echo "test-rabbitmq: set DRAMATIQ_BROKER_URL=amqp://…"; exit 2;; esac
	$(VENV)/bin/pytest $(PYTEST_ARGS) $(BROKER_SUITES)

## Only the slow fault-injection tests (real processes, outages): pytest -m reliability.
test-reliability: $(STAMP)
	$(VENV)/bin/pytest -m reliability $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Regenerate docs/screenshots/*.png: Chromium on a seeded live server (tests/e2e/test_screenshots.py).
screenshots: $(STAMP)
	@$(CHROMIUM_INSTALL)
	OSMOS_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/e2e/test_screenshots.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

## Benchmarks: real PostgreSQL (database osmos_bench), Redis db 2, gunicorn, all on loopback.
## Results in bench/results/<name>.json and the table in docs/benchmarks.md.
bench: $(STAMP)
	$(PY) bench/run.py

bench-sink bench-validate bench-ingest bench-ingest-small bench-deliver-batch bench-deliver-single bench-memory bench-bisect bench-throttle bench-outage-recovery bench-fairness: $(STAMP)
	$(PY) bench/run.py $@

bench-deliver: $(STAMP)
	$(PY) bench/run.py bench-deliver-batch bench-deliver-single bench-memory bench-bisect
