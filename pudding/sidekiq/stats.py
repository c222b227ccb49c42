"""The processed and failed totals that every Sidekiq dashboard shows."""

from __future__ import annotations

import time

from redis.client import Pipeline

# Ruby keeps the daily counters for five years.
DAILY_TTL = 5 * 365 * 24 * 3600


def flush(pipe: Pipeline, processed: int, failed: int) -> None:
    """Add the counts to the totals and to today's (UTC) counters."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for name, count in (("processed", processed), ("failed", failed)):
        pipe.incrby(f"stat:{name}", count)
        pipe.incrby(f"stat:{name}:{today}", count)
        pipe.expire(f"stat:{name}:{today}", DAILY_TTL)
