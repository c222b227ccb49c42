"""The poller: moves due jobs from the `retry` and `schedule` sets to their queues.

Each move is one atomic script (ZREM, then push only if the ZREM won), so a crash
cannot lose a job and two pollers cannot push it twice; a member that is no job goes to
the dead set as it is. Each cycle also drops dead processes from `processes` (whose
size sets the interval), and every few cycles it recovers the in-flight jobs of dead
processes.
"""

from __future__ import annotations

import random
import threading
import time

import structlog
from redis import Redis

from pudding.sidekiq import payload
from pudding.sidekiq.api import ProcessSet
from pudding.sidekiq.backoff import Backoff
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.recovery import OrphanRecovery

log = structlog.get_logger("pudding.sidekiq.scheduled")

# KEYS[1]: the sorted set. ARGV: (member, queue, payload to push) triples; an
# empty queue means the member is not a job and goes to the dead set as it is.
ENQUEUE_SCRIPT = """
local moved = 0
for i = 1, #ARGV, 3 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    if ARGV[i + 1] == '' then
      redis.call('ZADD', 'dead', ARGV[i + 2], ARGV[i])
    else
      redis.call('SADD', 'queues', ARGV[i + 1])
      redis.call('LPUSH', 'queue:' .. ARGV[i + 1], ARGV[i + 2])
    end
    moved = moved + 1
  end
end
return moved
"""

SETS = ("retry", "schedule")
BATCH = 100


class Poller:
    def __init__(
        self,
        redis: Redis,
        config: WorkerConfig,
        recovery: OrphanRecovery,
        quiet: threading.Event,
    ) -> None:
        self.redis, self.config, self.recovery, self.quiet = redis, config, recovery, quiet
        self._script = redis.register_script(ENQUEUE_SCRIPT)
        self._processes = ProcessSet(redis)
        self._next_orphan_check = 0.0
        self._live = 1
        self._failures = Backoff(log, "scheduler cycle", first=1.0, most=10.0)

    def run(self) -> None:
        self.quiet.wait(self._initial_wait())
        while not self.quiet.is_set():
            try:
                self.cycle()
                self._failures.succeeded()
                wait = self._random_interval()
            except Exception as error:
                wait = self._failures.failed(error)
            self.quiet.wait(wait)

    def cycle(self) -> None:
        self.enqueue_due()
        self._live = max(self._processes.cleanup(), 1)
        if time.monotonic() >= self._next_orphan_check:
            self.recovery.run()
            self._next_orphan_check = time.monotonic() + self.config.orphan_check_interval

    def enqueue_due(self) -> int:
        moved = 0
        for key in SETS:
            while members := self.redis.zrangebyscore(
                key, "-inf", payload.now(), start=0, num=BATCH
            ):
                args: list[bytes | str | float] = []
                for member in members:
                    args += self._push_args(member)
                moved += self._script(keys=[key], args=args)
                if len(members) < BATCH:
                    break
        return moved

    @staticmethod
    def _push_args(member: bytes) -> list[bytes | str | float]:
        try:
            job = payload.load(member)
        except ValueError:
            return [member, "", payload.now()]
        queue = job.get("queue") or "default"
        if not isinstance(queue, str) or not queue.isprintable():
            return [member, "", payload.now()]
        job["enqueued_at"] = payload.now()
        return [member, queue, payload.dump(job)]

    def _initial_wait(self) -> float:
        """Spread pollers of processes that start together, as Sidekiq does."""
        if self.config.poll_interval_average is None:
            return 10 + 5 * random.random()
        return random.random() * min(5.0, self.config.poll_interval_average)

    def _random_interval(self) -> float:
        count = 1
        average = self.config.poll_interval_average
        if average is None:
            count = self._live
            average = count * self.config.average_scheduled_poll_interval
        if count < 10:
            return average * random.random() + average / 2
        return average * random.random()
