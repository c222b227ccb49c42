"""The launcher: starts a worker process's threads, and quiets and stops them.

Each thread's loop carries on through whatever its work raises (pudding.sidekiq.backoff).
A thread that dies all the same leaves the process unable to do its work: the launcher
then stops, and `run_until_stopped` says so with a non-zero status for the supervisor.
"""

from __future__ import annotations

import os
import queue
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable

import structlog
from redis import Redis

from pudding.sidekiq import payload
from pudding.sidekiq.backoff import Backoff
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork
from pudding.sidekiq.heartbeat import Heartbeat, identity_info
from pudding.sidekiq.job import Registry
from pudding.sidekiq.metrics import ExecutionTracker
from pudding.sidekiq.processor import ErrorHandler, Processor
from pudding.sidekiq.recovery import OrphanRecovery
from pudding.sidekiq.retry import JobRetry
from pudding.sidekiq.scheduled import Poller

log = structlog.get_logger("pudding.sidekiq.launcher")

VERSION = "pudding-sidekiq 0.1.0"
EVENTS = ("startup", "quiet", "shutdown")
SIGNAL_POLL = 0.2
# How long idle processors get to leave a blocking fetch at shutdown.
HARD_SHUTDOWN_GRACE = 3.0


class Launcher:
    def __init__(self, config: WorkerConfig, redis: Redis, registry: Registry) -> None:
        self.config, self.redis, self.registry = config, redis, registry
        self.identity = f"{config.hostname}:{os.getpid()}:{secrets.token_hex(6)}"
        self.quieted = threading.Event()
        self.stopped = threading.Event()
        # Held by a beat and by the last flush: a beat that took the counts writes them
        # before the stop's flush, and no beat follows it (it would re-register us).
        self._beat_lock = threading.Lock()
        self._beating = True
        self.died: str | None = None
        self.signals: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.tracker = ExecutionTracker()
        self.error_handlers: list[ErrorHandler] = []
        self.fetch = ReliableFetch(redis, config, self.identity)
        retry = JobRetry(redis, config, self.fetch)
        self.processors = [
            Processor(
                _base36(n + 1),
                self.fetch,
                retry,
                registry,
                self.tracker,
                self.quieted,
                self.error_handlers,
            )
            for n in range(config.concurrency)
        ]
        self.recovery = OrphanRecovery(redis, config, self.identity)
        self.poller = Poller(redis, config, self.recovery, self.quieted)
        info = identity_info(config, self.identity, payload.now(), VERSION)
        self.heartbeat = Heartbeat(
            redis,
            config,
            self.identity,
            info,
            self.fetch,
            self.tracker,
            self._in_flight,
            self.quieted.is_set,
        )
        targets = {
            **{f"processor-{p.tid}": p.run for p in self.processors},
            "scheduler": self.poller.run,
            "heartbeat": self._beat_loop,
        }
        self.threads = {
            name: threading.Thread(target=self._supervised(name, target), name=name, daemon=True)
            for name, target in targets.items()
        }
        self._hooks: dict[str, list[Callable[[], None]]] = {event: [] for event in EVENTS}

    def on(self, event: str, callback: Callable[[], None]) -> None:
        """Run `callback` at "startup", "quiet" or "shutdown", like Sidekiq's `config.on`."""
        self._hooks[event].append(callback)

    def _fire(self, event: str) -> None:
        for callback in self._hooks[event]:
            try:
                callback()
            except Exception:
                log.exception("lifecycle hook raised", event=event)

    def run(self) -> None:
        """Start everything; the first beat registers our in-flight lists before any fetch."""
        self.heartbeat.beat()
        try:
            self.recovery.run()
        except Exception:
            log.exception("orphan recovery at start-up failed; the scheduler tries again")
        log.info(
            "worker started",
            identity=self.identity,
            concurrency=self.config.concurrency,
            queues=[q.name for q in self.config.queues],
            jobs=self.registry.names(),
        )
        for thread in self.threads.values():
            thread.start()
        self._fire("startup")

    def run_until_stopped(self) -> int:
        """Handle signals (from the OS or the Web) until a stop is done; returns the exit
        status: 1 when a thread died and the process stopped for it, else 0."""
        while not self.stopped.is_set():
            # A timeout, because the kernel may deliver a signal to another thread:
            # its Python handler then runs only once this thread executes bytecode.
            try:
                name = self.signals.get(timeout=SIGNAL_POLL)
            except queue.Empty:
                continue
            self.handle(name)
        return 1 if self.died else 0

    def _supervised(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException:
                log.critical("thread died; stopping the process", thread=name, exc_info=True)
                self.died = name
                self.signal("TERM")

        return run

    def signal(self, name: str) -> None:
        """Safe to call from a signal handler."""
        self.signals.put(name)

    def handle(self, name: str) -> None:
        if name == "TSTP":
            self.quiet()
        elif name in ("TERM", "INT"):
            self.stop()
        elif name == "TTIN":
            self.dump_threads()
        else:
            log.warning("ignoring unknown signal", signal=name)

    def quiet(self) -> None:
        """Stop fetching; jobs fetched but not started go back to their queues."""
        if self.quieted.is_set():
            return
        log.info("quiet: no longer accepting new work", identity=self.identity)
        self.quieted.set()
        self._fire("quiet")
        self.fetch.requeue_buffered()

    def stop(self) -> None:
        """Finish running jobs within the timeout, requeue the rest, unregister."""
        if self.stopped.is_set():
            return
        log.info("shutting down", timeout=self.config.timeout)
        self.quiet()
        self._fire("shutdown")
        deadline = time.monotonic() + self.config.timeout
        while self._in_flight() and time.monotonic() < deadline:
            time.sleep(0.1)
        abandoned = {p.tid: work for p in self.processors if (work := p.abandon()) is not None}
        unfinished = list(abandoned.values())
        if unfinished:
            log.warning(
                "timeout reached; pushing unfinished jobs back to their queues",
                count=len(unfinished),
            )
            for _ in unfinished:
                self.tracker.record(None, 0, failed=True)
        self.fetch.requeue(unfinished)
        # Idle processors may still be in a blocking fetch; what they get is requeued too.
        grace = time.monotonic() + HARD_SHUTDOWN_GRACE
        for processor in self.processors:
            thread = self.threads[f"processor-{processor.tid}"]
            if processor.tid not in abandoned and thread.is_alive():
                thread.join(max(grace - time.monotonic(), 0))
        self.fetch.requeue_buffered()
        with self._beat_lock:
            self._beating = False
            try:
                self.fetch.settle()
                self.heartbeat.clear()
                self.fetch.unregister()
            except Exception:
                log.exception("could not unregister cleanly; in-flight jobs will be recovered")
        self.stopped.set()
        log.info("bye", identity=self.identity)

    def dump_threads(self) -> None:
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            log.info(
                "thread", name=names.get(ident, ident), stack="".join(traceback.format_stack(frame))
            )

    def _beat_loop(self) -> None:
        failures = Backoff(log, "heartbeat")
        while not self.stopped.wait(self.config.heartbeat_interval):
            try:
                with self._beat_lock:
                    if not self._beating:
                        continue
                    signal = self.heartbeat.beat()
                if signal:
                    log.info("received a signal from Redis", signal=signal)
                    self.signal(signal)
                self.fetch.flush_acks()
                failures.succeeded()
            except Exception as error:
                # The next beat comes at its time: the interval is already a back-off.
                failures.failed(error)

    def _in_flight(self) -> dict[str, tuple[UnitOfWork, int]]:
        return {p.tid: current for p in self.processors if (current := p.in_flight()) is not None}


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"
