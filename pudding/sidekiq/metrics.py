"""Execution metrics: what the Metrics tab of Sidekiq 7 and 8 dashboards shows.

Each run is tallied in memory, per job class (processed, failed, milliseconds and an
execution-time histogram of the runs that succeeded), and the heartbeat writes the tally
in the transaction that already carries the processed and failed totals. The keys are
Sidekiq's own (lib/sidekiq/metrics/tracking.rb and shared.rb, 7.3 and 8.1):

- 7.x: `j|%Y%m%d|%-H:%-M` (one per minute, 8 h) with fields `<Class>|p`, `|f`, `|ms`, and
  the histogram `<Class>-%d-%H:%-M` (no prefix in 7.x), 8 h;
- 8.x: `j|%y%m%d|%-H:%M` (per minute, 8 h) and the same name less its last digit (per
  10 minutes, 3 days), and the histogram `h|<Class>-%-d-%-H:%-M`, 8 h.

A histogram is a BITFIELD of 26 saturating u16 counters: counter i counts the runs
shorter than BUCKET_INTERVALS[i] ms that were not shorter than the one before.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from datetime import datetime

from redis.client import Pipeline

# Upper bounds in ms; a run of 335 s or more falls in the 26th bucket.
BUCKET_INTERVALS = (
    20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1100, 1700, 2500,
    3800, 5750, 8500, 13000, 20000, 30000, 45000, 65000, 100000, 150000, 225000, 335000,
)  # fmt: skip
BUCKETS = len(BUCKET_INTERVALS) + 1
SHORT_TERM = 8 * 3600
MID_TERM = 3 * 24 * 3600
HISTOGRAM_TTL = 8 * 3600
FORMATS = ("7", "8")


@dataclass
class ClassTally:
    processed: int = 0
    failed: int = 0
    # Of the runs that succeeded: Sidekiq leaves failures out of both.
    succeeded: int = 0
    ms: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, other: ClassTally) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.succeeded += other.succeeded
        self.ms += other.ms
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]


@dataclass
class Tally:
    """The runs since the last flush: the `stat:` totals, and per class for the metrics."""

    processed: int = 0
    failed: int = 0
    classes: dict[str, ClassTally] = field(default_factory=dict)


class ExecutionTracker:
    """Counts every run, from every processor thread; the heartbeat takes the counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tally = Tally()

    def record(self, job_class: str | None, ms: int, failed: bool) -> None:
        """One run of `job_class` (None: a payload that named none) that took `ms`."""
        with self._lock:
            tally = self._tally
            tally.processed += 1
            tally.failed += failed
            if job_class is None:
                return
            entry = tally.classes.get(job_class)
            if entry is None:
                entry = tally.classes[job_class] = ClassTally()
            entry.processed += 1
            if failed:
                entry.failed += 1
            else:
                entry.succeeded += 1
                entry.ms += ms
                entry.histogram[bisect.bisect_right(BUCKET_INTERVALS, ms)] += 1

    def take(self) -> Tally:
        with self._lock:
            tally, self._tally = self._tally, Tally()
        return tally

    def restore(self, tally: Tally) -> None:
        """Put back counts whose flush failed, so that none are lost."""
        with self._lock:
            self._tally.processed += tally.processed
            self._tally.failed += tally.failed
            for name, entry in tally.classes.items():
                self._tally.classes.setdefault(name, ClassTally()).add(entry)


def job_buckets(now: datetime, version: str) -> list[tuple[str, int]]:
    """The `j|` hashes a flush at `now` (UTC) adds to, with their expiries."""
    if version == "7":
        return [(f"j|{now:%Y%m%d}|{now.hour}:{now.minute}", SHORT_TERM)]
    short = f"j|{now:%y%m%d}|{now.hour}:{now:%M}"
    return [(short[:-1], MID_TERM), (short, SHORT_TERM)]


def histogram_key(job_class: str, now: datetime, version: str) -> str:
    if version == "7":
        return f"{job_class}-{now:%d}-{now:%H}:{now.minute}"
    return f"h|{job_class}-{now.day}-{now.hour}:{now.minute}"


def write(
    pipe: Pipeline, classes: dict[str, ClassTally], now: datetime, versions: tuple[str, ...]
) -> None:
    """Add the per-class tally to the keys of each Sidekiq version in `versions`."""
    if not classes:
        return
    fields: dict[str, int] = {}
    for name, entry in classes.items():
        fields[f"{name}|p"] = entry.processed
        if entry.failed:
            fields[f"{name}|f"] = entry.failed
        if entry.succeeded:
            fields[f"{name}|ms"] = entry.ms
    for version in versions:
        for name, entry in classes.items():
            if entry.succeeded:
                key = histogram_key(name, now, version)
                increments: list[str | int] = []
                for index, count in enumerate(entry.histogram):
                    if count:
                        increments += ["INCRBY", "u16", f"#{index}", count]
                pipe.execute_command("BITFIELD", key, "OVERFLOW", "SAT", *increments)
                pipe.expire(key, HISTOGRAM_TTL)
        for key, ttl in job_buckets(now, version):
            for name, count in fields.items():
                pipe.hincrby(key, name, count)
            pipe.expire(key, ttl)
