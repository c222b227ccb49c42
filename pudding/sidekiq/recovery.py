"""Orphan recovery: the in-flight jobs of a process that died go back to their queues.

A process is dead when its heartbeat hash is gone, or it has not beaten for
`dead_process_timeout`. Any live process may recover; a lock with a short TTL, renewed
while the recovery runs and released only by its owner's token, keeps two from doing it
at once, and a holder that dies holds up the next recovery for a few seconds only. A job
recovered more often than `poison_pill_limit` is killed to the dead set: it is taking
its workers down with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock

from pudding.sidekiq import payload
from pudding.sidekiq.api import DeadSet
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import registry_key

log = structlog.get_logger("pudding.sidekiq.recovery")

LOCK_TTL = 3.0
RENEW_EVERY = 1.0
COUNTER_TTL = 72 * 3600
JID_MAX = 64


class OrphanRecovery:
    def __init__(self, redis: Redis, config: WorkerConfig, identity: str) -> None:
        self.redis, self.config, self.identity = redis, config, identity
        self.registry_key = registry_key(config.key_prefix)
        self.lock_key = f"{config.key_prefix}:recovery-lock"
        self.dead_set = DeadSet(redis, config.dead_max_jobs, config.dead_timeout)
        self._renewed = 0.0  # when this process last renewed the lock

    def run(self) -> int:
        """Recover what dead processes left; returns how many jobs moved. Another process
        already recovering is left to it."""
        lock = self.redis.lock(self.lock_key, timeout=LOCK_TTL, blocking=False, thread_local=False)
        if not lock.acquire():
            return 0
        self._renewed = time.monotonic()
        recovered = 0
        try:
            for key, queue in self._orphaned_lists():
                try:
                    recovered += self._recover_list(lock, key, queue)
                except LockError:
                    raise
                except Exception:
                    log.exception("could not recover an in-flight list", key=_text(key))
        except LockError:
            log.warning("the recovery lock expired; another process takes over", moved=recovered)
        finally:
            with contextlib.suppress(LockError):
                lock.release()
        if recovered:
            log.warning("recovered orphaned in-flight jobs", count=recovered)
        return recovered

    def _recover_list(self, lock: Lock, key: bytes, queue: str) -> int:
        moved = 0
        while (raw := self.redis.lindex(key, 0)) is not None:
            if time.monotonic() - self._renewed >= RENEW_EVERY:
                lock.reacquire()
                self._renewed = time.monotonic()
            self._recover_one(key, queue, raw)
            moved += 1
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.registry_key, key).delete(key).execute()
        return moved

    def _orphaned_lists(self) -> list[tuple[bytes, str]]:
        orphans = []
        for key, raw in self.redis.hgetall(self.registry_key).items():
            owner = _owner(raw)
            if owner is None:
                log.error("unreadable in-flight registration; left alone", key=_text(key))
                continue
            identity, queue = owner
            if identity != self.identity and not self._alive(identity):
                orphans.append((key, queue))
        return orphans

    def _alive(self, identity: str) -> bool:
        """Its process hash still exists (TTL 60 s) and it beat recently enough."""
        info, beat = self.redis.hmget(identity, "info", "beat")
        if info is None:
            return False
        try:
            last = float(beat or 0)
        except ValueError:
            last = 0.0
        return payload.now() - last < self.config.dead_process_timeout

    def _recover_one(self, key: bytes, queue: str, raw: bytes) -> None:
        try:
            job: dict[str, Any] | None = payload.load(raw)
        except ValueError:
            job = None
        counter = f"{self.config.key_prefix}:recovered:{_recovery_id(job, raw)}"
        with self.redis.pipeline(transaction=True) as pipe:
            times = pipe.incr(counter).expire(counter, COUNTER_TTL).execute()[0]
        if times <= self.config.poison_pill_limit:
            self.redis.lmove(key, f"queue:{queue}", "LEFT", "RIGHT")
            return
        log.error(
            "killing a poison pill",
            jid=job and str(job.get("jid")),
            queue=queue,
            recoveries=times,
        )
        with self.redis.pipeline(transaction=True) as pipe:
            if job is None:
                self.dead_set.kill(raw, pipe)
            elif job.get("dead") is not False:
                job.update(
                    error_class="PoisonPill",
                    error_message=f"the job was running in {times} worker processes that died",
                    failed_at=job.get("failed_at") or payload.now(),
                    retry_count=job.get("retry_count", 0),
                )
                self.dead_set.kill(payload.dump(job), pipe)
            pipe.lrem(key, 1, raw)
            pipe.execute()


def _owner(raw: bytes) -> tuple[str, str] | None:
    """(identity, queue) of a registry entry, or None when it is not what we write."""
    try:
        owner = json.loads(raw)
        identity, queue = owner["identity"], owner["queue"]
    except (ValueError, TypeError, KeyError):
        return None
    if not all(isinstance(name, str) and name.isprintable() for name in (identity, queue)):
        return None
    return identity, queue


def _text(key: bytes) -> str:
    return key.decode("utf-8", "replace")


def _recovery_id(job: dict[str, Any] | None, raw: bytes) -> str:
    """The job's jid, or a digest of its bytes when it has no usable one."""
    jid = job.get("jid") if job else None
    if isinstance(jid, str) and 0 < len(jid) <= JID_MAX and jid.isprintable():
        return jid
    return hashlib.sha1(raw).hexdigest()
