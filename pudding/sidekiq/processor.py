"""A processor thread: fetch a job, run it, record the outcome, repeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
from redis import RedisError

from pudding.sidekiq import payload
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork
from pudding.sidekiq.job import Job, Registry
from pudding.sidekiq.metrics import ExecutionTracker
from pudding.sidekiq.retry import JobRetry, UnknownJobClass, error_message, record_error

log = structlog.get_logger("pudding.sidekiq.processor")

# Called with the exception and the job's jid, class, queue, args and retry_count
# (Sidekiq's `error_handlers`), e.g. to report failures to an error tracker.
ErrorHandler = Callable[[BaseException, dict[str, Any]], None]


class Processor:
    def __init__(
        self,
        tid: str,
        fetch: ReliableFetch,
        retry: JobRetry,
        registry: Registry,
        tracker: ExecutionTracker,
        quiet: threading.Event,
        error_handlers: list[ErrorHandler],
    ) -> None:
        self.tid = tid
        self.fetch, self.retry, self.registry, self.tracker = fetch, retry, registry, tracker
        self.quiet = quiet
        self.error_handlers = error_handlers
        self.lock = threading.Lock()
        self.current: tuple[UnitOfWork, int] | None = None
        self.abandoned = False

    def run(self) -> None:
        while not self.quiet.is_set():
            work = self.fetch.retrieve(self.quiet)
            if work is None:
                continue
            try:
                self.process(work)
            except Exception:
                # A fault of ours, not the job's: the thread carries on, and a job whose
                # outcome was not written yet goes to the dead set, as it was, rather than
                # run again and again in this process.
                unrecorded = self.current is not None
                log.exception("processing a job failed", queue=work.queue, unrecorded=unrecorded)
                if unrecorded:
                    kill = partial(self.retry.kill, work, work.job)
                    self._outcome(work, None, time.monotonic(), kill, True)

    def in_flight(self) -> tuple[UnitOfWork, int] | None:
        return self.current

    def abandon(self) -> UnitOfWork | None:
        """Hard shutdown: the caller requeues the running job; its outcome is then ignored."""
        with self.lock:
            self.abandoned = True
            return self.current[0] if self.current else None

    def process(self, work: UnitOfWork) -> None:
        self.current = (work, int(time.time()))
        started = time.monotonic()
        try:
            job = payload.load(work.job)
        except ValueError as error:
            went = self._outcome(
                work, None, started, partial(self.retry.kill, work, work.job), True
            )
            # Not the payload itself: job arguments can hold secrets.
            log.error(
                "job payload is not a JSON object; killed as it was",
                queue=work.queue,
                error=str(error),
                size=len(work.job),
                outcome=went,
            )
            return
        context = {"jid": job.get("jid"), "class": job.get("class"), "queue": work.queue}
        problem = _malformed(job)
        if problem is not None:
            record_error(job, "ArgumentError", problem)
            went = self._outcome(
                work, None, started, partial(self.retry.kill, work, payload.dump(job)), True
            )
            log.error("job cannot run; killed", error=problem, outcome=went, **context)
            return
        name = _metrics_name(job)
        job_class = self.registry.get(job["class"])
        if job_class is None:
            unknown = UnknownJobClass(job["class"])
            went = self._outcome(
                work, name, started, partial(self.retry.failed, work, job, None, unknown), True
            )
            log.warning("no such job class here", error=str(unknown), outcome=went, **context)
            return
        log.info("start", **context)
        instance: Job | None = None
        try:
            instance = self.registry.create(job_class)
            instance.jid = job.get("jid")
            instance.perform(*job["args"])
        except BaseException as exc:
            # SystemExit or KeyboardInterrupt too: the failure is recorded like any other,
            # then the thread ends and takes the process down, as the job asked.
            elapsed = round(time.monotonic() - started, 6)
            self._report(
                exc, {**context, "args": job["args"], "retry_count": job.get("retry_count")}
            )
            went = self._outcome(
                work,
                name,
                started,
                partial(self.retry.failed, work, job, job_class, exc, instance),
                True,
            )
            log.warning(
                "fail",
                elapsed=elapsed,
                error=f"{type(exc).__name__}: {error_message(exc)}",
                outcome=went,
                exc_info=exc,
                **context,
            )
            if not isinstance(exc, Exception):
                raise
            return
        elapsed = time.monotonic() - started
        self.fetch.job_took(elapsed)
        self._outcome(work, name, started, partial(self.fetch.ack, work))
        log.info("done", elapsed=round(elapsed, 6), **context)

    def _report(self, exc: BaseException, context: dict[str, Any]) -> None:
        for handler in self.error_handlers:
            try:
                handler(exc, context)
            except Exception:
                log.exception("error handler raised")

    def _outcome(
        self,
        work: UnitOfWork,
        name: str | None,
        started: float,
        record: Callable[[], Any],
        failed: bool = False,
    ) -> Any:
        """Count the run and write its outcome, unless a hard shutdown already requeued it.

        Should Redis fail, the job stays in our in-flight list, and the next fetch puts it
        back in its queue: it runs again, it is not lost. Should the outcome fail for any
        other reason (a field no code could foresee), the
        job goes to the dead set as it was fetched, rather than run again and again.
        """
        with self.lock:
            self.current = None
            if self.abandoned:
                return "requeued"
            self.tracker.record(name, int((time.monotonic() - started) * 1000), failed)
            try:
                return self._record(work, record)
            finally:
                if failed:
                    # A failure acks in its own transaction (an ack after success rides
                    # with the next fetch, which forgets it then).
                    self.fetch.forget([work])

    def _record(self, work: UnitOfWork, record: Callable[[], Any]) -> Any:
        try:
            return record()
        except RedisError:
            log.exception("could not record the outcome of a job", queue=work.queue)
            self.fetch.lost_track()
            return "unrecorded"
        except Exception:
            log.exception("could not record the outcome of a job; killing it as it was")
        try:
            return self.retry.kill(work, work.job)
        except Exception:
            log.exception("could not kill the job either", queue=work.queue)
            return "unrecorded"


def _malformed(job: dict[str, Any]) -> str | None:
    if not isinstance(job.get("class"), str) or not job["class"]:
        return "job payload has no 'class' string"
    if not isinstance(job.get("args"), list):
        return "job payload has no 'args' list"
    return None


def _metrics_name(job: dict[str, Any]) -> str | None:
    """The class the Metrics tab files a run under (an ActiveJob's own, as Ruby does); None
    for a name that is no text, which only the totals count."""
    wrapped = job.get("wrapped")
    name = wrapped if isinstance(wrapped, str) and wrapped else job["class"]
    return name if name.isprintable() else None
