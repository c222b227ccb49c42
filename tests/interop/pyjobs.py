"""Python jobs for the interop tests, loaded by our worker with `-r pyjobs`.

Every run appends `{"jid", "class", "args"}` to the Redis list `py:ran`, so a test can
tell that (and how often) our worker ran a job.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, ClassVar

import redis

from pudding.sidekiq.job import Job


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)


def _record(job: Job, args: tuple[Any, ...]) -> None:
    run = {"jid": job.jid, "class": job.class_name(), "args": list(args)}
    _redis().rpush("py:ran", json.dumps(run))


class EchoJob(Job):
    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py"}

    def perform(self, *args: Any) -> None:
        _record(self, args)


class SlowJob(Job):
    """Stays busy until the test pushes to `release:<jid>` (or 30 s pass)."""

    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py"}

    def perform(self, *args: Any) -> None:
        _record(self, args)
        _redis().blpop([f"release:{self.jid}"], timeout=30)


class FailJob(Job):
    """The Python twin of jobs.rb's RubyFailJob: one retry, full backtrace."""

    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py", "retry": 1, "backtrace": True}

    def perform(self, *args: Any) -> None:
        _record(self, args)
        raise ValueError(f"boom {list(args)!r}")


class DoomedJob(Job):
    """`retry: 0` is truthy in Ruby: no retry, but the job goes to the dead set."""

    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py", "retry": 0, "backtrace": True}

    def perform(self, *args: Any) -> None:
        _record(self, args)
        raise RuntimeError("doomed")


class FlakyJob(Job):
    """Fails on the first run of each jid, succeeds on the next."""

    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py", "retry": 3}

    def perform(self, *args: Any) -> None:
        _record(self, args)
        if _redis().incr(f"flaky:{self.jid}") == 1:
            raise RuntimeError("first run fails")


class ChargeJob(Job):
    """Stands in for a Ruby class: Ruby code enqueues `Billing::ChargeJob`, we run it."""

    sidekiq_class = "Billing::ChargeJob"
    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py"}

    def perform(self, *args: Any) -> None:
        _record(self, args)


class AlwaysFailJob(Job):
    """Fails on every run: where it goes next is decided by `retry`, `retry_count`, `retry_for`."""

    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py"}

    def perform(self, *args: Any) -> None:
        _record(self, args)
        raise RuntimeError(f"always fails {list(args)!r}")
