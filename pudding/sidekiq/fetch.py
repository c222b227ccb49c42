"""Reliable fetch: jobs move atomically from their queue into a private in-flight list.

Sidekiq OSS pops jobs with BRPOP, so a process that dies loses the jobs it was
running. Here each process has an in-flight list per queue,
`<prefix>:inflight|<identity>|<queue>` (never `queue:sq|…` nor `working:…`, never in
`queues`, so Sidekiq Pro, GitLab's reliable fetcher and the Web leave it alone).
A job stays there until its outcome is durable, then it is acked (LREM). The lists
of a process whose heartbeat has expired are pushed back to their queues by any
live process (pudding.sidekiq.recovery). Payloads are bytes, acked and requeued by
the very bytes fetched.

Throughput comes from batching: the processor threads that are idle at the same
moment share one fetch, and acks of finished jobs ride along with the next fetch.

A fetch whose reply is lost (Redis went down after running it) leaves jobs in our list
that no thread of ours knows of. The fetch keeps count of the jobs it handed out and has
not seen acked, so after a failed fetch or outcome, and at a clean stop, it puts whatever
else is in its lists back into their queues, rather than leave them until we die.
"""

from __future__ import annotations

import collections
import json
import random
import threading
from typing import NamedTuple

import structlog
from redis import Redis
from redis.client import Pipeline

from pudding.sidekiq.backoff import Backoff
from pudding.sidekiq.config import WorkerConfig

log = structlog.get_logger("pudding.sidekiq.fetch")

# KEYS: the queue lists, then their in-flight lists, in the same order.
# ARGV: queue count, jobs wanted, ack count, (queue index, payload) per ack,
#       then the queue indexes in the order to try them.
FETCH_SCRIPT = """
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local pos = 4 + 2 * tonumber(ARGV[3])
for i = 4, pos - 1, 2 do
  redis.call('LREM', KEYS[n + tonumber(ARGV[i])], 1, ARGV[i + 1])
end
local out = {}
while pos <= #ARGV and want > 0 do
  local idx = tonumber(ARGV[pos])
  local jobs = redis.call('RPOP', KEYS[idx], want)
  if jobs then
    for _, job in ipairs(jobs) do
      redis.call('LPUSH', KEYS[n + idx], job)
      out[#out + 1] = idx
      out[#out + 1] = job
    end
    want = want - #jobs
  end
  pos = pos + 1
end
return out
"""

# Short, so that an idle processor notices quiet and stop quickly.
BLOCKING_TIMEOUT = 0.5
MIN_IDLE_BACKOFF = 0.01
# How long a stop waits for a fetch still under way (a hung Redis answers within its
# socket timeout).
SETTLE_WAIT = 10.0
# Average job run time under which a fetch also takes jobs for later.
PREFETCH_BELOW = 0.005
PREFETCH_MIN = 20
MAX_IDLE_BACKOFF = 1.0


class UnitOfWork(NamedTuple):
    """A tuple, not a dataclass: made, hashed and compared for every job, in C."""

    queue: str
    job: bytes  # the payload exactly as fetched: acks and requeues match these bytes


def registry_key(prefix: str) -> str:
    """The hash of every in-flight list: list key -> {"identity", "queue"} as JSON."""
    return f"{prefix}:inflight-registry"


def inflight_key(prefix: str, identity: str, queue: str) -> str:
    return f"{prefix}:inflight|{identity}|{queue}"


class ReliableFetch:
    def __init__(self, redis: Redis, config: WorkerConfig, identity: str) -> None:
        self.redis, self.config, self.identity = redis, config, identity
        self.queues = list(dict.fromkeys(queue.name for queue in config.queues))
        self.registry_key = registry_key(config.key_prefix)
        self._keys = [f"queue:{q}" for q in self.queues] + [
            self.inflight_key(q) for q in self.queues
        ]
        self._index = {queue: i + 1 for i, queue in enumerate(self.queues)}
        self._weighted = [q.name for q in config.queues for _ in range(max(q.weight, 1))]
        self._script = redis.register_script(FETCH_SCRIPT)
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._buffer: collections.deque[UnitOfWork] = collections.deque()
        self._acks: list[UnitOfWork] = []
        self._waiting = 0
        self._backoff = MIN_IDLE_BACKOFF
        self._job_seconds = 1.0
        self._failures = Backoff(log, "fetch")
        # Jobs handed out and not yet acked (their LREM not yet answered).
        self._held: collections.Counter[UnitOfWork] = collections.Counter()
        self._suspect = False

    def inflight_key(self, queue: str) -> str:
        return inflight_key(self.config.key_prefix, self.identity, queue)

    def registrations(self) -> dict[str, str]:
        """Registry entries for this process's in-flight lists (written with each heartbeat)."""
        return {
            self.inflight_key(q): json.dumps({"identity": self.identity, "queue": q})
            for q in self.queues
        }

    def retrieve(self, stop: threading.Event) -> UnitOfWork | None:
        """The next job for a processor thread, or None once `stop` is set."""
        with self._lock:
            self._waiting += 1
        try:
            while not stop.is_set():
                with self._lock:
                    if self._buffer:
                        return self._buffer.popleft()
                if not self._fetching.acquire(timeout=0.5):
                    continue
                try:
                    if self._suspect:
                        self.return_strays()
                        self._suspect = False
                    with self._lock:
                        want = 0 if self._buffer else self._waiting + self._prefetch()
                    if want:
                        works = self._fetch(want) or self._wait_for_work(stop)
                        if works:
                            self._backoff = MIN_IDLE_BACKOFF
                        with self._lock:
                            self._buffer.extend(works)
                            self._held.update(works)
                    self._failures.succeeded()
                except Exception as error:
                    # Its reply may be what was lost: the fetch may have moved jobs.
                    self.lost_track()
                    stop.wait(self._failures.failed(error))
                finally:
                    self._fetching.release()
            self.requeue_buffered()
            return None
        finally:
            with self._lock:
                self._waiting -= 1

    def job_took(self, seconds: float) -> None:
        """Processors report run times; short jobs make prefetching worth it."""
        self._job_seconds += (seconds - self._job_seconds) * 0.1

    def _prefetch(self) -> int:
        """Extra jobs to take with a fetch, beyond one per idle processor.

        Only while jobs are short: then a prefetched job waits ~0.1 s at most, and
        the round trips saved dominate. Long jobs are never held back.
        """
        if self._job_seconds >= PREFETCH_BELOW:
            return 0
        return max(self.config.concurrency, PREFETCH_MIN)

    def ack(self, work: UnitOfWork) -> None:
        """The job is done; it leaves the in-flight list with the next fetch or flush."""
        with self._lock:
            self._acks.append(work)

    def ack_in(self, pipe: Pipeline, work: UnitOfWork) -> None:
        """Ack inside the caller's transaction (with the retry or dead-set write)."""
        pipe.lrem(self.inflight_key(work.queue), 1, work.job)

    def flush_acks(self) -> None:
        acks = self._take_acks()
        if not acks:
            return
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for work in acks:
                    self.ack_in(pipe, work)
                pipe.execute()
        except Exception:
            self._return_acks(acks)
            raise
        self.forget(acks)

    def forget(self, works: list[UnitOfWork]) -> None:
        """These jobs have left our in-flight list (or failed to, and are left to
        `return_strays`): no thread holds them any more."""
        with self._lock:
            for work in works:
                if self._held[work] > 1:
                    self._held[work] -= 1
                else:
                    self._held.pop(work, None)

    def lost_track(self) -> None:
        """A write about our in-flight jobs failed: the next fetch returns the strays."""
        self._suspect = True

    def settle(self) -> None:
        """At a clean stop, once the processors are done: acks out, strays back."""
        if not self._fetching.acquire(timeout=SETTLE_WAIT):
            log.warning("a fetch still hangs; what it took will be recovered after we exit")
            return
        try:
            self.return_strays()
        finally:
            self._fetching.release()

    def return_strays(self) -> int:
        """Put back into their queues the jobs in our in-flight lists that no thread of ours
        holds; returns how many. Called with no fetch running (the fetch lock, or a stop)."""
        self.flush_acks()
        with self._lock:
            held = collections.Counter(self._held)
        strays = []
        for queue in self.queues:
            listed = collections.Counter(
                UnitOfWork(queue, raw) for raw in self.redis.lrange(self.inflight_key(queue), 0, -1)
            )
            strays += (listed - held).elements()
        if strays:
            log.warning("jobs a lost fetch reply left in flight go back", count=len(strays))
            self.requeue(strays)
        return len(strays)

    def _take_buffered(self) -> list[UnitOfWork]:
        """Jobs fetched that no processor has started: they go back when we quiet."""
        with self._lock:
            works = list(self._buffer)
            self._buffer.clear()
        return works

    def requeue(self, works: list[UnitOfWork]) -> None:
        """Back to the tail of their queues, where they are fetched next, bytes unchanged.

        Should Redis fail, they stay in our in-flight list and are recovered later.
        """
        if not works:
            return
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                for work in works:
                    pipe.rpush(f"queue:{work.queue}", work.job)
                    self.ack_in(pipe, work)
                pipe.execute()
        except Exception:
            log.exception("requeue failed; the jobs stay in flight and will be recovered")
            return
        self.forget(works)

    def requeue_buffered(self) -> None:
        """Jobs fetched that no processor has started go back: a quiet process holds none."""
        self.requeue(self._take_buffered())

    def unregister(self) -> None:
        """After a clean stop: drop our in-flight lists if they are empty, as they should be."""
        for queue in self.queues:
            key = self.inflight_key(queue)
            if self.redis.llen(key) == 0:
                with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(key).hdel(self.registry_key, key).execute()
            else:
                log.warning(
                    "in-flight jobs left at exit; another process will recover them", key=key
                )

    def _fetch(self, want: int) -> list[UnitOfWork]:
        acks = self._take_acks()
        args: list[object] = [len(self.queues), max(want, 1), len(acks)]
        for work in acks:
            args += [self._index[work.queue], work.job]
        args += [self._index[q] for q in self._queue_order()]
        try:
            flat = self._script(keys=self._keys, args=args)
        except Exception:
            self._return_acks(acks)
            raise
        self.forget(acks)
        return [
            UnitOfWork(self.queues[int(flat[i]) - 1], flat[i + 1]) for i in range(0, len(flat), 2)
        ]

    def _wait_for_work(self, stop: threading.Event) -> list[UnitOfWork]:
        if len(self.queues) == 1:
            queue = self.queues[0]
            job = self.redis.blmove(
                f"queue:{queue}", self.inflight_key(queue), BLOCKING_TIMEOUT, "RIGHT", "LEFT"
            )
            return [UnitOfWork(queue, job)] if job is not None else []
        stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_IDLE_BACKOFF)
        return []

    def _queue_order(self) -> list[str]:
        if self.config.strict:
            return self.queues
        return list(dict.fromkeys(random.sample(self._weighted, len(self._weighted))))

    def _take_acks(self) -> list[UnitOfWork]:
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def _return_acks(self, acks: list[UnitOfWork]) -> None:
        with self._lock:
            self._acks[:0] = acks
