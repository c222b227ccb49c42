"""Processed and failed counts, buffered in memory and flushed with each heartbeat."""

from __future__ import annotations

import threading
import time

from redis.client import Pipeline

# Ruby keeps the daily counters for five years.
DAILY_TTL = 5 * 365 * 24 * 3600


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.failed = 0

    def record(self, failed: bool) -> None:
        with self._lock:
            self.processed += 1
            self.failed += failed

    def take(self) -> tuple[int, int]:
        with self._lock:
            counts = (self.processed, self.failed)
            self.processed = self.failed = 0
        return counts

    def restore(self, processed: int, failed: int) -> None:
        """Put counts back after a flush failed, so none are lost."""
        with self._lock:
            self.processed += processed
            self.failed += failed


def flush(pipe: Pipeline, processed: int, failed: int) -> None:
    """Add the counts to the totals and to today's (UTC) counters."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for name, count in (("processed", processed), ("failed", failed)):
        pipe.incrby(f"stat:{name}", count)
        pipe.incrby(f"stat:{name}:{today}", count)
        pipe.expire(f"stat:{name}:{today}", DAILY_TTL)
