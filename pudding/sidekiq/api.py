"""Reading and steering what is in Redis, as Ruby's `sidekiq/api` does.

It works on a client that answers bytes (the engine's) or str (decode_responses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from pudding.sidekiq import payload


class Queue:
    def __init__(self, redis: Redis, name: str) -> None:
        self.redis, self.name, self.key = redis, name, f"queue:{name}"

    def size(self) -> int:
        return self.redis.llen(self.key)

    def jobs(self) -> list[dict[str, Any]]:
        """Oldest first, the order they will run in."""
        return [json.loads(raw) for raw in reversed(self.redis.lrange(self.key, 0, -1))]

    def latency(self) -> float:
        oldest = self.redis.lindex(self.key, -1)
        if oldest is None:
            return 0.0
        enqueued_at = payload.timestamp(json.loads(oldest).get("enqueued_at"))
        return payload.now() - enqueued_at if enqueued_at else 0.0


class SortedSet:
    key = ""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def size(self) -> int:
        return self.redis.zcard(self.key)

    def entries(self) -> list[tuple[float, dict[str, Any]]]:
        """(score, job) pairs, lowest score first; a payload that is not JSON is a str."""
        return [
            (score, _parse(raw))
            for raw, score in self.redis.zrange(self.key, 0, -1, withscores=True)
        ]

    def find_job(self, jid: str) -> dict[str, Any] | None:
        return next(
            (job for _, job in self.entries() if isinstance(job, dict) and job.get("jid") == jid),
            None,
        )


class ScheduledSet(SortedSet):
    key = "schedule"


class RetrySet(SortedSet):
    key = "retry"


class DeadSet(SortedSet):
    key = "dead"

    def __init__(
        self, redis: Redis, max_jobs: int = 10_000, timeout: float = 180 * 24 * 3600
    ) -> None:
        super().__init__(redis)
        self.max_jobs, self.timeout = max_jobs, timeout

    def kill(self, raw: bytes | str, pipe: Pipeline | None = None) -> None:
        """Add a job to the morgue and trim it by age and size, as Ruby's `DeadSet#kill`.

        With `pipe`, the commands join that transaction instead of running now.
        """
        now = payload.now()
        target = pipe if pipe is not None else self.redis.pipeline(transaction=True)
        target.zadd(self.key, {raw: now})
        target.zremrangebyscore(self.key, "-inf", now - self.timeout)
        target.zremrangebyrank(self.key, 0, -self.max_jobs)
        if pipe is None:
            target.execute()


@dataclass(frozen=True)
class Stats:
    processed: int
    failed: int
    enqueued: int
    scheduled_size: int
    retry_size: int
    dead_size: int
    processes_size: int

    @classmethod
    def read(cls, redis: Redis) -> Stats:
        queues = sorted(redis.smembers("queues"))
        with redis.pipeline(transaction=False) as pipe:
            pipe.get("stat:processed").get("stat:failed")
            pipe.zcard("schedule").zcard("retry").zcard("dead").scard("processes")
            for queue in queues:
                pipe.llen(f"queue:{queue}")
            processed, failed, scheduled, retries, dead, processes, *sizes = pipe.execute()
        return cls(
            int(processed or 0), int(failed or 0), sum(sizes), scheduled, retries, dead, processes
        )


class ProcessSet:
    """Live worker processes, and the signals the dashboard's Quiet and Stop buttons send."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def processes(self) -> list[dict[str, Any]]:
        found = []
        for identity in sorted(self.redis.smembers("processes")):
            held = self.redis.hgetall(identity).items()
            fields = {_text(key): _text(value) for key, value in held}
            if "info" in fields:
                found.append({**fields, "info": json.loads(fields["info"])})
        return found

    def cleanup(self) -> int:
        """Drop the members whose process hash has expired, as Ruby's `ProcessSet#cleanup`
        does; returns how many are left. A process's SADD and HSET share a transaction, so
        no live process is ever without its hash."""
        members = list(self.redis.smembers("processes"))
        if not members:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            for identity in members:
                pipe.hexists(identity, "info")
            alive = pipe.execute()
        gone = [identity for identity, here in zip(members, alive, strict=True) if not here]
        if gone:
            self.redis.srem("processes", *gone)
        return len(members) - len(gone)

    def signal(self, identity: str, signal: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(f"{identity}-signals", signal).expire(f"{identity}-signals", 60).execute()

    def quiet(self, identity: str) -> None:
        self.signal(identity, "TSTP")

    def stop(self, identity: str) -> None:
        self.signal(identity, "TERM")


def _parse(raw: bytes | str) -> dict[str, Any] | bytes | str:
    try:
        return payload.load(raw)
    except ValueError:
        return raw


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
