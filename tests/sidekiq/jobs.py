"""Jobs for tests that run a worker as a subprocess; each records its run in Redis."""

from __future__ import annotations

import functools
import random
import time

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from pudding.sidekiq import Job
from pudding.sidekiq.config import redis_url_from_env


def _redis() -> redis.Redis:
    return redis.Redis.from_url(redis_url_from_env(), decode_responses=True)


@functools.cache
def _patient_redis() -> redis.Redis:
    """One client per worker process, for jobs run by the thousand; its commands are retried
    for about 5 s, so that a job rides out a Redis restart instead of going to `retry`."""
    return redis.Redis.from_url(redis_url_from_env(), retry=Retry(ConstantBackoff(0.1), 50))


class RecordJob(Job):
    """Records its jid in the list `ran`."""

    def perform(self, *args: object) -> None:
        _redis().rpush("ran", self.jid or "")


class SlowJob(Job):
    """Records that it started, sleeps, then records its jid in `ran`."""

    def perform(self, seconds: float) -> None:
        client = _redis()
        client.rpush("started", self.jid or "")
        time.sleep(seconds)
        client.rpush("ran", self.jid or "")


class HoldJob(Job):
    """Records that it started in `started`, then sleeps: it stays in flight for as long as a
    test needs to kill its worker. Its other arguments ride along unread, so they may hold
    anything a payload can (a non-UTF-8 byte in a string, say)."""

    def perform(self, seconds: float, *_carried: object) -> None:
        _redis().rpush("started", self.jid or "")
        time.sleep(seconds)


class ChaosJob(Job):
    """Takes a few ms, then counts its run in the hash `runs` (HINCRBY of its jid): a chaos
    test tells lost jobs (no run) from duplicates (more than one). Arguments are unread."""

    def perform(self, *_args: object) -> None:
        time.sleep(random.uniform(0.002, 0.008))
        _patient_redis().hincrby("runs", self.jid or "", 1)
