"""The destination gate in one process (the in-process store of the embedded mode, and the
same logic over PostgreSQL when the suite runs on it), and its AIMD rules (pure functions).
Cross-process guarantees: tests/outbound/test_gate_processes.py."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from osmos.outbound import gate as gate_module
from osmos.outbound.gate import aimd_decrease, aimd_increase, close_all, destination_gate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_gates():
    yield
    close_all()


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- AIMD (pure) ---


def test_a_429_halves_the_concurrency_down_to_one():
    assert aimd_decrease(8, since_last_decrease=None) == 4
    assert aimd_decrease(3, since_last_decrease=5.0) == 1
    assert aimd_decrease(1, since_last_decrease=None) == 1


def test_429s_within_a_second_of_a_decrease_do_not_halve_again():
    assert aimd_decrease(4, since_last_decrease=0.2) == 4
    assert aimd_decrease(4, since_last_decrease=1.0) == 2


def test_successes_raise_the_concurrency_by_one_per_round_up_to_the_maximum():
    assert aimd_increase(4, successes=3, maximum=8) == 4
    assert aimd_increase(4, successes=4, maximum=8) == 5
    assert aimd_increase(8, successes=100, maximum=8) == 8
    assert aimd_increase(9, successes=1, maximum=8) == 8


# --- one process ---


def test_rate_limit_holds_in_every_one_second_window_across_threads():
    gate = destination_gate(uuid.uuid4(), rate_per_second=20, max_concurrency=8)
    acquired: list[float] = []
    ends = time.monotonic() + 2.5

    def worker() -> None:
        while time.monotonic() < ends:
            permit = gate.acquire(max_wait=1)
            if permit is not None:
                acquired.append(time.monotonic())
                permit.release()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert max_in_any_window(acquired) <= 20
    assert len(acquired) >= 35  # about 48 in 2.5 s: the limit is used, not just respected


def test_no_more_permits_than_max_concurrency_are_out_at_once():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=3)
    out, most = [0], [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            with gate.acquire(max_wait=10):
                with lock:
                    out[0] += 1
                    most[0] = max(most[0], out[0])
                time.sleep(0.005)
                with lock:
                    out[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most[0] == 3


def test_acquire_gives_up_after_max_wait_when_every_slot_is_taken():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=1)
    held = gate.acquire(max_wait=1)
    started = time.monotonic()

    assert gate.acquire(max_wait=0.2) is None
    assert 0.15 < time.monotonic() - started < 2
    held.release()
    assert gate.acquire(max_wait=0.2) is not None


def test_a_429_with_retry_after_pauses_every_acquisition_until_then():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=4)

    gate.observe(429, {"Retry-After": "2"})

    assert gate.acquire(max_wait=0.3) is None
    assert 1.0 < gate.wait_hint() <= 2.0
    assert gate.paused_until() is not None
    started = time.monotonic()
    permit = gate.acquire(max_wait=5)
    assert permit is not None
    assert 1.2 < time.monotonic() - started < 3.5


def test_a_quota_at_zero_pauses_until_its_reset_whatever_the_status():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=4)

    gate.observe(200, {"ratelimit": "limit=10, remaining=0, reset=2"})

    assert gate.acquire(max_wait=0.2) is None


def test_a_remaining_quota_paces_the_sending_until_its_reset():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=8)
    gate.observe(200, {"x-ratelimit-remaining": "10", "x-ratelimit-reset": "2"})  # 5/s
    acquired = []
    ends = time.monotonic() + 1.5
    while time.monotonic() < ends:
        permit = gate.acquire(max_wait=1)
        if permit is not None:
            acquired.append(time.monotonic())
            permit.release()

    assert len(acquired) <= 9  # 5/s for 1.5 s (+1 at the start)


def test_429s_halve_the_concurrency_and_successes_bring_it_back():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=8)

    gate.observe(429, None)
    assert gate._limit() == 4
    gate.observe(429, None)  # the same burst: not halved again
    assert gate._limit() == 4
    for _ in range(4):
        gate.observe(200, {})
    assert gate._limit() == 5
    for _ in range(5 + 6 + 7):
        gate.observe(200, {})
    assert gate._limit() == 8


def test_after_a_429_no_new_permit_until_fewer_than_half_are_out():
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=4)
    out = [gate.acquire(max_wait=1) for _ in range(4)]
    gate.observe(429, None)

    out.pop().release()
    assert gate.acquire(max_wait=0.2) is None  # 3 out, 2 allowed
    out.pop().release()
    out.pop().release()
    again = gate.acquire(max_wait=1)
    assert again is not None  # 1 out, 2 allowed
    assert gate.acquire(max_wait=0.2) is None
    again.release()
    out.pop().release()


def test_a_permit_never_released_expires(settings):
    settings.OUTBOUND_GATE_PERMIT_MAX_SECONDS = 0.3
    gate = destination_gate(uuid.uuid4(), rate_per_second=None, max_concurrency=1)
    forgotten = gate.acquire(max_wait=1)
    assert forgotten is not None

    assert gate.acquire(max_wait=3) is not None  # the maintenance thread took it back


@pytest.mark.parametrize(("rate", "concurrency"), [(0.05, 1), (10_001, 1), (None, 0), (None, 65)])
def test_limits_out_of_range_are_refused(rate, concurrency):
    with pytest.raises(ValueError, match="must be"):
        destination_gate(uuid.uuid4(), rate_per_second=rate, max_concurrency=concurrency)


def test_the_store_matches_the_database():
    from django.db import connection

    store = destination_gate(uuid.uuid4(), rate_per_second=1, max_concurrency=1)._store
    expected = "PostgresStore" if connection.vendor == "postgresql" else "MemoryStore"
    assert type(store).__name__ == expected
    assert gate_module.RATE_MARGIN < 1
