"""What happens to a job that raised: the retry set, the dead set, or nothing.

The rules and fields are Sidekiq 6.4.1's (spec section 3.5), so Ruby's Web and
API show and act on our failures as on their own, with `retry_for` as 7.1.3+ or 8.1
read it. Fields a hostile producer got wrong (a `retry_count` that is no number, a
`retry_queue` that is no name) are read as absent rather than fail the job's outcome.
"""

from __future__ import annotations

import base64
import json
import random
import traceback
import zlib
from typing import Any

import structlog
from redis import Redis

from pudding.sidekiq import payload
from pudding.sidekiq.api import DeadSet
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork
from pudding.sidekiq.job import DEFAULT_OPTIONS, Job

log = structlog.get_logger("pudding.sidekiq.retry")

MAX_ERROR_MESSAGE = 10_000


class UnknownJobClass(Exception):
    """A job names a class this worker does not have. Ruby raises NameError and retries
    the job, so during a rolling deploy a job that new code enqueued waits in the retry
    set for the workers that know its class."""

    ruby_class = "NameError"

    def __init__(self, name: str) -> None:
        super().__init__(f"uninitialized constant {name}")


def ruby_truthy(value: Any) -> bool:
    """Ruby truthiness: only nil and false are false (0 and "" are true)."""
    return value is not None and value is not False


def retry_delay(count: int, custom: int | None = None) -> int:
    """Seconds until retry number `count`, with Sidekiq 6/7's jitter."""
    base = custom if custom is not None and custom > 0 else count**4 + 15
    return base + random.randrange(10) * (count + 1)


def error_class(exc: BaseException) -> str:
    if isinstance(exc, UnknownJobClass):
        return exc.ruby_class
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def error_message(exc: BaseException) -> str:
    """The exception's message, or its class name: a job's exception may have a `__str__`
    that raises, and its failure must be recorded all the same."""
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return type(exc).__name__


def compress_backtrace(lines: list[str]) -> str:
    """Base64 of zlib-compressed JSON, as every Sidekiq Web version decodes it."""
    return base64.b64encode(zlib.compress(json.dumps(lines).encode())).decode()


def backtrace_lines(exc: BaseException) -> list[str]:
    """Innermost frame first, in Ruby's `file:line:in 'method'` shape."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [f"{frame.filename}:{frame.lineno}:in `{frame.name}'" for frame in reversed(frames)]


def record_error(job: dict[str, Any], error_class_name: str, message: str) -> None:
    job["error_message"] = message[:MAX_ERROR_MESSAGE]
    job["error_class"] = error_class_name
    if _is_int(job.get("retry_count")):
        job["retried_at"] = payload.now()
        job["retry_count"] += 1
    else:
        job["failed_at"] = payload.now()
        job["retry_count"] = 0


class JobRetry:
    def __init__(self, redis: Redis, config: WorkerConfig, fetch: ReliableFetch) -> None:
        self.redis, self.config, self.fetch = redis, config, fetch
        self.dead_set = DeadSet(redis, config.dead_max_jobs, config.dead_timeout)

    def failed(
        self,
        work: UnitOfWork,
        job: dict[str, Any],
        job_class: type[Job] | None,
        exc: BaseException,
        instance: Job | None = None,
    ) -> str:
        """Record the failure and ack the job in one transaction; returns where it went.

        `instance` is the job object that raised (None if making it failed): its hooks
        decide the retry delay and what happens when retries run out. `job_class` is None
        when this worker does not know the class: the job then retries unless it says
        otherwise (Ruby would drop one without a `retry` of its own; we lose no work).
        """
        if job.get("retry") is None:
            options = job_class.get_sidekiq_options() if job_class else DEFAULT_OPTIONS
            job["retry"] = options["retry"]
        if not ruby_truthy(job["retry"]):
            self._ack(work)
            return "discarded"
        retry_queue = job.get("retry_queue")
        job["queue"] = retry_queue if isinstance(retry_queue, str) and retry_queue else work.queue
        record_error(job, error_class(exc), error_message(exc))
        backtrace = job.get("backtrace")
        if ruby_truthy(backtrace):
            lines = backtrace_lines(exc)
            if not isinstance(backtrace, bool) and isinstance(backtrace, int):
                lines = lines[:backtrace]
            job["error_backtrace"] = compress_backtrace(lines)
        count = job["retry_count"]
        limit = job["retry"] if _is_int(job["retry"]) else self.config.max_retries
        if not self._exhausted(job, count, limit):
            delay = retry_delay(count, self._custom_delay(instance, count, exc))
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd("retry", {payload.dump(job): payload.now() + delay})
                self.fetch.ack_in(pipe, work)
                pipe.execute()
            return "retry"
        return self.exhausted(work, job, exc, instance)

    def exhausted(
        self, work: UnitOfWork, job: dict[str, Any], exc: BaseException, instance: Job | None
    ) -> str:
        if instance is not None:
            try:
                instance.retries_exhausted(job, exc)
            except Exception:
                log.exception("retries_exhausted hook raised", jid=job.get("jid"))
        if job.get("dead") is False:
            self._ack(work)
            return "discarded"
        return self.kill(work, payload.dump(job))

    def kill(self, work: UnitOfWork, raw: bytes) -> str:
        """To the dead set, acked in the same transaction."""
        with self.redis.pipeline(transaction=True) as pipe:
            self.dead_set.kill(raw, pipe)
            self.fetch.ack_in(pipe, work)
            pipe.execute()
        return "dead"

    def _ack(self, work: UnitOfWork) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            self.fetch.ack_in(pipe, work)
            pipe.execute()

    def _exhausted(self, job: dict[str, Any], count: int, limit: int) -> bool:
        """Out of retries: by count, by `retry_for`, or (8.1) by `retry_for` alone."""
        retry_for = job.get("retry_for")
        failed_at = payload.timestamp(job.get("failed_at"))
        if payload.timestamp(retry_for) is None or failed_at is None:
            return count >= limit
        out_of_time = failed_at + retry_for < payload.now()
        if self.config.retry_for_mode == "8":
            return out_of_time
        return count >= limit or out_of_time

    @staticmethod
    def _custom_delay(instance: Job | None, count: int, exc: BaseException) -> int | None:
        if instance is None:
            return None
        try:
            return instance.retry_in(count, exc)
        except Exception:
            log.exception("retry_in hook raised; using the default delay")
            return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
