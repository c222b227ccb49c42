"""The heartbeat: how the Web's Busy page, Ruby's API and other workers see this process.

Every beat writes, in one transaction, the stats counters and execution metrics, the
process hash (`info`, busy, beat, quiet, rss, rtt_us, concurrency; TTL 60 s), the in-flight
jobs under both `<identity>:workers` (read by Web ≤ 6.4.1) and `<identity>:work`
(6.4.2+), the in-flight list registry, and pops one signal sent from the Web.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline

from pudding.sidekiq import metrics, payload, stats
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork

TTL = 60


def identity_info(
    config: WorkerConfig, identity: str, started_at: float, version: str
) -> dict[str, Any]:
    queues = list(dict.fromkeys(queue.name for queue in config.queues))
    weights = {queue.name: queue.weight for queue in config.queues}
    return {
        "hostname": config.hostname,
        "started_at": started_at,
        "pid": os.getpid(),
        "tag": config.tag,
        "concurrency": config.concurrency,
        "queues": queues,
        "weights": [weights],
        "capsules": {
            "default": {
                "concurrency": config.concurrency,
                "mode": "strict" if config.strict else "weighted",
                "weights": weights,
            }
        },
        "labels": list(config.labels),
        "identity": identity,
        "version": version,
        "embedded": False,
    }


def rss_kb() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Heartbeat:
    def __init__(
        self,
        redis: Redis,
        config: WorkerConfig,
        identity: str,
        info: dict[str, Any],
        fetch: ReliableFetch,
        tracker: metrics.ExecutionTracker,
        in_flight: Callable[[], dict[str, tuple[UnitOfWork, int]]],
        is_quiet: Callable[[], bool],
    ) -> None:
        self.redis, self.identity, self.fetch, self.tracker = redis, identity, fetch, tracker
        self.metrics_versions = config.metrics_versions
        self.info = json.dumps(info)
        self.concurrency = info["concurrency"]
        self.in_flight, self.is_quiet = in_flight, is_quiet

    def beat(self) -> str | None:
        """Write one heartbeat; returns the signal the Web sent, if any. Raises what Redis
        raised, once the counts are back in the tracker for the next beat."""
        tally = self.tracker.take()
        work = {
            # For the Busy page only: acks use the bytes themselves.
            tid: json.dumps(
                {"queue": unit.queue, "payload": payload.printable(unit.job), "run_at": run_at}
            )
            for tid, (unit, run_at) in self.in_flight().items()
        }
        try:
            started = time.perf_counter()
            self.redis.ping()
            rtt_us = int((time.perf_counter() - started) * 1_000_000)
            with self.redis.pipeline(transaction=True) as pipe:
                self._flush(pipe, tally)
                for key in (f"{self.identity}:workers", f"{self.identity}:work"):
                    pipe.delete(key)
                    if work:
                        pipe.hset(key, mapping=work)
                        pipe.expire(key, TTL)
                pipe.hset(self.fetch.registry_key, mapping=self.fetch.registrations())
                pipe.sadd("processes", self.identity)
                pipe.hset(
                    self.identity,
                    mapping={
                        "info": self.info,
                        "busy": len(work),
                        "beat": time.time(),
                        "quiet": "true" if self.is_quiet() else "false",
                        "rss": rss_kb(),
                        "rtt_us": rtt_us,
                        "concurrency": self.concurrency,
                    },
                )
                pipe.expire(self.identity, TTL)
                pipe.rpop(f"{self.identity}-signals")
                signal = pipe.execute()[-1]
        except Exception:
            self.tracker.restore(tally)
            raise
        return signal.decode("utf-8", "replace") if signal is not None else None

    def clear(self) -> None:
        """On a clean stop: leave `processes`, drop the work hashes, flush the last counts."""
        tally = self.tracker.take()
        with self.redis.pipeline(transaction=True) as pipe:
            self._flush(pipe, tally)
            pipe.srem("processes", self.identity)
            pipe.unlink(f"{self.identity}:workers", f"{self.identity}:work")
            pipe.execute()

    def _flush(self, pipe: Pipeline, tally: metrics.Tally) -> None:
        stats.flush(pipe, tally.processed, tally.failed)
        metrics.write(pipe, tally.classes, datetime.now(UTC), self.metrics_versions)
