"""Execution metrics in the keys the Metrics tab of Sidekiq 7.3 and 8.1 reads, checked
against values worked out by hand from their tracking.rb and shared.rb."""

from datetime import UTC, datetime

import pytest

from pudding.sidekiq import Client
from pudding.sidekiq.job import Job
from pudding.sidekiq.metrics import ClassTally, ExecutionTracker, write
from tests.support import wait_for

# 05:06:07 UTC on 4 March 2026: one-digit hour and minute, where the formats differ.
EARLY = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
LATE = datetime(2026, 12, 2, 14, 37, 59, tzinfo=UTC)
HOURS_8 = 8 * 3600
DAYS_3 = 3 * 24 * 3600


def histogram(r, key):
    gets = [part for index in range(26) for part in ("GET", "u16", f"#{index}")]
    return r.execute_command("BITFIELD", key, *gets)


def flush(r, tracker, now, versions):
    with r.pipeline(transaction=True) as pipe:
        write(pipe, tracker.take().classes, now, versions)
        pipe.execute()


def sample_tracker():
    tracker = ExecutionTracker()
    for ms in (5, 25, 400_000):
        tracker.record("Billing::Charge", ms, failed=False)
    tracker.record("Billing::Charge", 3, failed=True)  # failures count no time
    tracker.record("Broken", 7, failed=True)
    tracker.record(None, 1, failed=False)  # no class to file it under: totals only
    return tracker


def test_the_tracker_keeps_the_totals_too():
    tally = sample_tracker().take()
    assert (tally.processed, tally.failed) == (6, 2)
    assert set(tally.classes) == {"Billing::Charge", "Broken"}


def test_sidekiq_7_keys(r):
    flush(r, sample_tracker(), EARLY, ("7",))
    assert r.hgetall("j|20260304|5:6") == {
        "Billing::Charge|p": "4",
        "Billing::Charge|f": "1",
        "Billing::Charge|ms": "400030",
        "Broken|p": "1",
        "Broken|f": "1",
    }
    key = "Billing::Charge-04-05:6"
    assert histogram(r, key) == [1, 1] + [0] * 23 + [1]
    assert not r.exists("Broken-04-05:6")
    assert HOURS_8 - 5 <= r.ttl("j|20260304|5:6") <= HOURS_8
    assert HOURS_8 - 5 <= r.ttl(key) <= HOURS_8
    assert sorted(r.keys()) == sorted(["j|20260304|5:6", key])


def test_sidekiq_8_keys(r):
    flush(r, sample_tracker(), EARLY, ("8",))
    minute, ten_minutes = "j|260304|5:06", "j|260304|5:0"
    expected = {
        "Billing::Charge|p": "4",
        "Billing::Charge|f": "1",
        "Billing::Charge|ms": "400030",
        "Broken|p": "1",
        "Broken|f": "1",
    }
    assert r.hgetall(minute) == expected and r.hgetall(ten_minutes) == expected
    assert HOURS_8 - 5 <= r.ttl(minute) <= HOURS_8
    assert DAYS_3 - 5 <= r.ttl(ten_minutes) <= DAYS_3
    key = "h|Billing::Charge-4-5:6"
    assert histogram(r, key) == [1, 1] + [0] * 23 + [1]
    assert HOURS_8 - 5 <= r.ttl(key) <= HOURS_8
    assert sorted(r.keys()) == sorted([minute, ten_minutes, key])


def test_two_digit_times_and_both_formats(r):
    tracker = ExecutionTracker()
    tracker.record("A", 20, failed=False)  # 20 ms is not under 20: the second bucket
    tracker.record("A", 334_999, failed=False)
    flush(r, tracker, LATE, ("7", "8"))
    assert set(r.keys()) == {
        "j|20261202|14:37", "A-02-14:37", "j|261202|14:37", "j|261202|14:3", "h|A-2-14:37",
    }  # fmt: skip
    assert r.hgetall("j|20261202|14:37") == {"A|p": "2", "A|ms": "335019"}
    assert histogram(r, "A-02-14:37") == [0, 1] + [0] * 22 + [1, 0]
    assert histogram(r, "h|A-2-14:37") == histogram(r, "A-02-14:37")


def test_flushes_add_up_and_counters_saturate(r):
    tracker = ExecutionTracker()
    tracker.record("A", 1, failed=False)
    flush(r, tracker, LATE, ("8",))
    tracker.restore(
        type(tracker.take())(1, 0, {"A": ClassTally(1, 0, 1, 2, [70_000] + [0] * 25)})
    )
    flush(r, tracker, LATE, ("8",))
    assert r.hgetall("j|261202|14:37") == {"A|p": "2", "A|ms": "3"}
    assert histogram(r, "h|A-2-14:37")[0] == 65_535


def test_a_failed_flush_puts_the_counts_back():
    tracker = sample_tracker()
    taken = tracker.take()
    tracker.record("Broken", 1, failed=True)
    tracker.restore(taken)
    again = tracker.take()
    assert (again.processed, again.failed) == (7, 3)
    assert again.classes["Broken"].failed == 2 and again.classes["Billing::Charge"].ms == 400_030


class Quick(Job):
    def perform(self) -> None:
        pass


@pytest.mark.parametrize("metrics, written", [("both", True), ("off", False)])
def test_a_worker_writes_metrics_with_its_heartbeat(r, start_worker, metrics, written):
    start_worker(Quick, metrics=metrics)
    Client(r).perform_async(Quick)
    wait_for(lambda: r.get("stat:processed") == "1", message="the run to be counted")
    buckets = [key for key in r.keys("j|*") if r.hget(key, "Quick|p") == "1"]
    assert len(buckets) == (3 if written else 0)
    assert bool(r.keys("h|Quick-*")) == bool(r.keys("Quick-*")) == written
