"""PostgreSQL drops the connection of an ingest request while it stores records.

Another connection terminates the request's backend (``pg_terminate_backend``) while its
``COPY`` is in flight: the client gets a 5xx with a JSON ``detail``, nothing of the request
is stored (records, sequence counter), and the next request succeeds on a new connection.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from connectors.models import SourceSettings
from connectors.services import connector_create
from ingest.models import Record
from tests.support.schemas import IDS as SCHEMA
from tests.support.schemas import id_records as schema_records

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.reliability,
    pytest.mark.skipif(not settings.DATABASE_IS_POSTGRES, reason="terminates a PostgreSQL backend"),
]


def _raw_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )


class BackendKiller(threading.Thread):
    """Terminates the first backend of the test database that runs a COPY."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with _raw_connection() as conn:
            while not self.stop.is_set() and not self.killed:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND query ILIKE 'COPY%%' AND state = 'active'"
                ).fetchall()
                for (pid,) in rows:
                    conn.execute("SELECT pg_terminate_backend(%s)", [pid])
                    self.killed.append(pid)
                time.sleep(0.002)


def test_a_dropped_database_connection_answers_5xx_json_and_stores_nothing(live_server, org_a):
    issued = connector_create(organization=org_a, name="Dropped", direction="source", fields=SCHEMA)
    url = f"{live_server.url}/ingest/{issued.ingest_token}/"
    headers = {"Content-Type": "application/json"}
    assert requests.post(url, data=json.dumps(schema_records(3)), headers=headers, timeout=30).ok
    before = SourceSettings.objects.get(connector=issued.connector).last_sequence

    # A body whose COPY lasts long enough to be caught; bigger on each try if it was not.
    for count in (100_000, 250_000):
        killer = BackendKiller()
        killer.start()
        response = requests.post(
            url, data=json.dumps(schema_records(count, start=10)), headers=headers, timeout=120
        )
        killer.stop.set()
        killer.join()
        if killer.killed:
            break
    assert killer.killed, "the COPY finished before it could be interrupted"

    assert 500 <= response.status_code < 600, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert Record.objects.filter(connector=issued.connector).count() == 3
    assert SourceSettings.objects.get(connector=issued.connector).last_sequence == before

    again = requests.post(url, data=json.dumps(schema_records(5)), headers=headers, timeout=30)
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == 5
    assert Record.objects.filter(connector=issued.connector).count() == 8
