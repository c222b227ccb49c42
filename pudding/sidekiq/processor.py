"""A processor thread: fetch a job, run it, record the outcome, repeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog

from pudding.sidekiq import payload
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork
from pudding.sidekiq.job import Job, Registry
from pudding.sidekiq.retry import JobRetry, record_error
from pudding.sidekiq.stats import Counters

log = structlog.get_logger("pudding.sidekiq.processor")

# Called with the exception and the job's jid, class, queue, args and retry_count
# (Sidekiq's `error_handlers`), e.g. to report failures to an error tracker.
ErrorHandler = Callable[[Exception, dict[str, Any]], None]


class Processor:
    def __init__(
        self,
        tid: str,
        fetch: ReliableFetch,
        retry: JobRetry,
        registry: Registry,
        counters: Counters,
        quiet: threading.Event,
        error_handlers: list[ErrorHandler],
    ) -> None:
        self.tid = tid
        self.fetch, self.retry, self.registry, self.counters = fetch, retry, registry, counters
        self.quiet = quiet
        self.error_handlers = error_handlers
        self.lock = threading.Lock()
        self.current: tuple[UnitOfWork, int] | None = None
        self.abandoned = False
        self.thread = threading.Thread(target=self.run, name=f"processor-{tid}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        while not self.quiet.is_set():
            work = self.fetch.retrieve(self.quiet)
            if work is not None:
                self.process(work)

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
            self._outcome(work, partial(self.retry.kill, work, work.job), failed=True)
            log.error(
                "job payload is not valid JSON; moved to the dead set",
                queue=work.queue,
                error=str(error),
            )
            return
        context = {"jid": job.get("jid"), "class": job.get("class"), "queue": work.queue}
        problem = _malformed(job)
        job_class = self.registry.get(job["class"]) if problem is None else None
        if problem is None and job_class is None:
            problem = ("NameError", f"no job class {job['class']!r} is registered in this worker")
        if problem is not None:
            record_error(job, *problem)
            self._outcome(work, partial(self.retry.kill, work, payload.dump(job)), failed=True)
            log.error("job cannot run; moved to the dead set", error=problem[1], **context)
            return
        log.info("start", **context)
        instance: Job | None = None
        try:
            instance = self.registry.create(job_class)
            instance.jid = job.get("jid")
            instance.perform(*job["args"])
        except Exception as exc:
            elapsed = round(time.monotonic() - started, 6)
            self._report(
                exc, {**context, "args": job["args"], "retry_count": job.get("retry_count")}
            )
            went = self._outcome(
                work, partial(self.retry.failed, work, job, job_class, exc, instance), failed=True
            )
            log.warning(
                "fail",
                elapsed=elapsed,
                error=f"{type(exc).__name__}: {exc}",
                outcome=went,
                exc_info=exc,
                **context,
            )
            return
        elapsed = time.monotonic() - started
        self.fetch.job_took(elapsed)
        self._outcome(work, partial(self.fetch.ack, work))
        log.info("done", elapsed=round(elapsed, 6), **context)

    def _report(self, exc: Exception, context: dict[str, Any]) -> None:
        for handler in self.error_handlers:
            try:
                handler(exc, context)
            except Exception:
                log.exception("error handler raised")

    def _outcome(self, work: UnitOfWork, record: Callable[[], Any], failed: bool = False) -> Any:
        """Write the outcome unless a hard shutdown already requeued this job."""
        with self.lock:
            self.current = None
            if self.abandoned:
                return "requeued"
            self.counters.record(failed)
            try:
                return record()
            except Exception:
                # The job stays in our in-flight list: it is recovered, not lost.
                log.exception("could not record the outcome of a job", queue=work.queue)
                return "unrecorded"


def _malformed(job: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(job.get("class"), str):
        return ("ArgumentError", "job payload has no 'class' string")
    if not isinstance(job.get("args"), list):
        return ("ArgumentError", "job payload has no 'args' list")
    return None
