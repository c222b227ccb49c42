"""Jobs for tests that run a worker as a subprocess; each records its run in Redis."""

from __future__ import annotations

import time

import redis

from pudding.sidekiq import Job
from pudding.sidekiq.config import redis_url_from_env


def _redis() -> redis.Redis:
    return redis.Redis.from_url(redis_url_from_env(), decode_responses=True)


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
