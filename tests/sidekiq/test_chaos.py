"""Chaos: two workers fed 3,000 jobs and garbage of every kind for about a minute, while
workers are killed (-9) and stopped (TERM) at random and their Redis (AOF on) is restarted
once and frozen (SIGSTOP) for 3 s once. No job may be lost (runs twice are allowed: delivery
is at least once), all garbage must end dead, no worker may exit unless told to, and each
orphaned in-flight list must be recovered within dead-process-timeout + 5 s of the kill."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pudding.sidekiq import Client
from pudding.sidekiq.ids import new_jid
from tests.support import RedisServer

from .conftest import WorkerProcess

JOBS = 3000
PUSH_SECONDS = 58.0
# Longer than the freeze plus a heartbeat interval, so that no live worker looks dead.
DEAD_PROCESS_TIMEOUT = 5.0
RECOVERY_BOUND = DEAD_PROCESS_TIMEOUT + 5
WORKER_ARGS = (
    "-q",
    "default",
    "-c",
    "4",
    "-t",
    "5",
    "--dead-process-timeout",
    str(DEAD_PROCESS_TIMEOUT),
    "--orphan-check-interval",
    "0.5",
)
FREEZE = 3.0
TICK = 0.05
# To look for a worker holding jobs, so that a kill -9 leaves orphans behind.
VICTIM_SEARCH = 1.0
DRAIN_TIMEOUT = 60.0
# A run starts about 15; past this, workers that die are no longer replaced.
MAX_WORKERS = 40
REGISTRY = "pysidekiq:inflight-registry"


def garbage_entries(rng: random.Random) -> list[bytes]:
    """Two of each kind of queue entry that is no job; each unique, so each is told apart in
    the dead set (the JSON objects by their jid, for the engine may add error fields)."""
    entries = []
    for n in range(2):
        entries += [
            b"\xff\xfe not json %d" % n,
            b"\x00" + rng.randbytes(16) + b" %d" % n,
            b"lone \x80 continuation byte %d" % n,
            b'["ChaosJob", %d]' % n,
            b'"a JSON string %d"' % n,
            b'{"args":[%d],"queue":"default","jid":"%s"}' % (n, new_jid().encode()),
            b'{"class":"ChaosJob","args":"%d","jid":"%s"}' % (n, new_jid().encode()),
            b'{"class":%d,"args":[],"jid":"%s"}' % (n, new_jid().encode()),
        ]
    return entries


def non_utf8_job(jid: str, n: int) -> bytes:
    """A valid job whose JSON holds bytes that are not UTF-8 in strings: it must run."""
    now = time.time()
    head = json.dumps(
        {
            "class": "ChaosJob",
            "queue": "default",
            "jid": jid,
            "retry": True,
            "created_at": now,
            "enqueued_at": now,
        },
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"args":[%d,"caf\xff"],"tags":["\x80\xfe"]}' % n


def jids_in(entries: list[bytes]) -> set[str]:
    """The jids of the entries that are JSON objects with one."""
    jids = set()
    for raw in entries:
        try:
            job = json.loads(raw.decode("utf-8", "surrogateescape"))
        except ValueError:
            continue
        if isinstance(job, dict) and isinstance(job.get("jid"), str):
            jids.add(job["jid"])
    return jids


@dataclass
class Orphan:
    """An in-flight list that a worker killed -9 left with jobs in it."""

    key: str
    jobs: int
    killed_at: float
    recovered_after: float | None = None


class Chaos:
    """Runs the scenario from one thread: it pushes, strikes and watches in turn, so each
    strike is over (Redis back, a replacement worker started) before the next step."""

    def __init__(self, server: RedisServer, logs: Path, rng: random.Random) -> None:
        self.server, self.logs, self.rng = server, logs, rng
        self.redis = redis.Redis.from_url(server.url())
        self.client = Client(self.redis)
        self.workers: list[WorkerProcess] = []
        self.running: list[WorkerProcess] = []
        self.stopping: list[WorkerProcess] = []
        self.identities: dict[int, str] = {}
        self.exited_on_their_own: list[str] = []
        self.term_statuses: list[int] = []
        self.orphans: list[Orphan] = []
        self.jids: list[str] = []
        self.garbage = garbage_entries(rng)
        self.must_run = [new_jid() for _ in range(3)]
        self.garbage_pushed = self.must_run_pushed = 0
        self.kills = self.terms = 0
        self.timeline: list[str] = []
        self.runs_kept_across_restart: bool | None = None
        self.started = time.monotonic()

    def strikes(self) -> list[tuple[float, str]]:
        """When to do what: one Redis restart, one freeze, and a worker kill -9 or TERM
        every 2.5-5 s (one of each for sure)."""
        events = [(self.rng.uniform(12, 18), "restart"), (self.rng.uniform(28, 34), "freeze")]
        kinds = ["kill", "term"]
        at = 2.0
        while (at := at + self.rng.uniform(2.5, 5.0)) < PUSH_SECONDS - 2:
            events.append(
                (at, kinds.pop(0) if kinds else self.rng.choice(["kill", "kill", "term"]))
            )
        return sorted(events)

    def run(self) -> None:
        events = self.strikes()
        self.spawn()
        self.spawn()
        while (elapsed := self.elapsed()) < PUSH_SECONDS:
            self.push_due(elapsed)
            while events and events[0][0] <= elapsed:
                self.strike(events.pop(0)[1])
            self.watch()
            time.sleep(TICK)
        self.push_due(PUSH_SECONDS)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not (settled := self.settled()) and time.monotonic() < deadline:
            self.watch()
            time.sleep(TICK)
        self.timeline.append(f"{self.elapsed():.1f} s: {'settled' if settled else 'gave up'}")
        for worker in self.running:
            worker.signal(signal.SIGTERM)
        self.stopping += self.running
        self.running = []
        for worker in self.stopping:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(20)
        self.watch()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def push_due(self, elapsed: float) -> None:
        """Jobs and garbage at a steady pace: by `elapsed` their share of the totals."""
        share = min(elapsed / PUSH_SECONDS, 1.0)
        first, last = len(self.jids), int(JOBS * share)
        if last > first:
            args = [[n] for n in range(first, last)]
            self.jids += self.client.push_bulk({"class": "ChaosJob", "args": args})
        garbage = int(len(self.garbage) * share)
        if garbage > self.garbage_pushed:
            self.redis.lpush("queue:default", *self.garbage[self.garbage_pushed : garbage])
            self.garbage_pushed = garbage
        while self.must_run_pushed < int(len(self.must_run) * share):
            n = self.must_run_pushed
            self.redis.lpush("queue:default", non_utf8_job(self.must_run[n], n))
            self.must_run_pushed += 1

    def strike(self, kind: str) -> None:
        at, note = self.elapsed(), kind
        if kind == "restart":
            self.restart_redis()
        elif kind == "freeze":
            self.freeze_redis()
        elif (victim := self.victim(holding=kind == "kill")) is None:
            note += " skipped: no worker has beaten yet"
        elif kind == "kill":
            note += f" {victim.log_path.stem} holding {self.kill(victim)} jobs"
        else:
            note += f" {victim.log_path.stem}"
            self.term(victim)
        self.timeline.append(f"{at:.1f} s: {note}")

    def spawn(self) -> None:
        if len(self.workers) >= MAX_WORKERS:
            return
        worker = WorkerProcess(
            self.server.url(), self.logs / f"worker-{len(self.workers)}.log", *WORKER_ARGS
        )
        self.workers.append(worker)
        self.running.append(worker)

    def victim(self, holding: bool) -> WorkerProcess | None:
        """A running worker that has beaten; for a kill, one holding jobs if one comes to."""
        ready = [w for w in self.running if w.process.pid in self.identities]
        if not ready:
            return None
        deadline = time.monotonic() + (VICTIM_SEARCH if holding else 0)
        while True:
            busy = [w for w in ready if self.redis.llen(self.inflight(w))]
            if busy or time.monotonic() >= deadline:
                return self.rng.choice(busy or ready)
            time.sleep(0.005)

    def inflight(self, worker: WorkerProcess) -> str:
        return f"pysidekiq:inflight|{self.identities[worker.process.pid]}|default"

    def kill(self, worker: WorkerProcess) -> int:
        """kill -9 and replace; returns how many jobs it left in flight (an orphan if any)."""
        worker.process.kill()
        killed_at = time.monotonic()
        if worker.wait(10) != -signal.SIGKILL:
            self.exited_on_their_own.append(worker.output()[-3000:])
        self.kills += 1
        self.running.remove(worker)
        if held := self.redis.llen(self.inflight(worker)):
            self.orphans.append(Orphan(self.inflight(worker), held, killed_at))
        self.spawn()
        return held

    def term(self, worker: WorkerProcess) -> None:
        """TERM and replace at once; `watch` collects its exit status."""
        worker.signal(signal.SIGTERM)
        self.terms += 1
        self.running.remove(worker)
        self.stopping.append(worker)
        self.spawn()

    def restart_redis(self) -> None:
        """A clean restart: what Redis acknowledged is in the AOF, and must come back."""
        before = self.redis.hgetall("runs")
        self.server.stop()
        self.server.start()
        after = self.redis.hgetall("runs")
        self.runs_kept_across_restart = bool(before) and all(
            int(after.get(jid, 0)) >= int(count) for jid, count in before.items()
        )

    def freeze_redis(self) -> None:
        assert self.server.process is not None
        pid = self.server.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE)
        finally:
            os.kill(pid, signal.SIGCONT)

    def watch(self) -> None:
        """Workers that exited unasked (replaced), TERMed ones that are done, identities of
        new workers, and orphans that have been recovered."""
        for worker in [w for w in self.running if w.process.poll() is not None]:
            self.exited_on_their_own.append(worker.output()[-3000:])
            self.running.remove(worker)
            self.spawn()
        for worker in [w for w in self.stopping if w.process.poll() is not None]:
            self.term_statuses.append(worker.process.returncode)
            self.stopping.remove(worker)
        unknown = {w.process.pid for w in self.running} - set(self.identities)
        if unknown:
            for member in self.redis.smembers("processes"):
                identity = member.decode()
                pid = int(identity.split(":")[-2])
                if pid in unknown:
                    self.identities[pid] = identity
        now = time.monotonic()
        for orphan in self.orphans:
            if orphan.recovered_after is None and not self.redis.exists(orphan.key):
                orphan.recovered_after = now - orphan.killed_at

    def settled(self) -> bool:
        """Every job ran or is dead, every garbage entry is dead, nothing waits or is in
        flight, every orphan was recovered, and every worker has started (so a TERM finds
        its signal handler)."""
        dead = self.redis.zrange("dead", 0, -1)
        ran_or_dead = set(self.redis.hkeys("runs")) | {jid.encode() for jid in jids_in(dead)}
        in_flight = sum(self.redis.llen(key) for key in self.redis.hkeys(REGISTRY))
        return (
            self.redis.llen("queue:default") == 0
            and in_flight == 0
            and all(orphan.recovered_after is not None for orphan in self.orphans)
            and all(jid.encode() in ran_or_dead for jid in self.jids + self.must_run)
            and not self.garbage_missing(dead)
            and all(w.process.pid in self.identities for w in self.running)
        )

    def garbage_missing(self, dead: list[bytes]) -> list[bytes]:
        """Garbage entries not in the dead set: as they were, or (a JSON object) by jid."""
        dead_jids = jids_in(dead)
        members = set(dead)
        return [
            raw for raw in self.garbage if raw not in members and not jids_in([raw]) & dead_jids
        ]


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir, appendonly=True)
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def test_chaos_loses_no_job_and_kills_all_garbage(aof_redis: RedisServer, tmp_path: Path):
    """The whole scenario, then its figures (printed) and the verdicts."""
    chaos = Chaos(aof_redis, tmp_path, random.Random())
    try:
        chaos.run()
    finally:
        for worker in chaos.workers:
            worker.stop(grace=0)
    db = chaos.redis
    runs = {jid.decode(): int(count) for jid, count in db.hgetall("runs").items()}
    dead = db.zrange("dead", 0, -1)
    accounted = (
        set(runs)
        | jids_in(dead)
        | jids_in(db.zrange("retry", 0, -1))
        | jids_in(db.lrange("queue:default", 0, -1))
    )
    lost = [jid for jid in chaos.jids + chaos.must_run if jid not in accounted]
    duplicates = {jid: count for jid, count in runs.items() if count > 1}
    poison_pills = [jid for jid in jids_in(dead) if jid in set(chaos.jids)]
    missing_garbage = chaos.garbage_missing(dead)
    times = [orphan.recovered_after for orphan in chaos.orphans]
    in_flight = {key.decode(): db.llen(key) for key in db.hkeys(REGISTRY) if db.llen(key)}
    logs = {w.log_path.name: w.log_path.read_text(errors="replace") for w in chaos.workers}
    thread_deaths = [
        name for name, log in logs.items() if "thread died" in log or "Exception in thread" in log
    ]
    print(
        f"\nchaos: {len(chaos.jids)} jobs, {len(chaos.must_run)} non-UTF-8 jobs and "
        f"{len(chaos.garbage)} garbage entries pushed; {len(chaos.workers)} workers started, "
        f"{chaos.kills} killed -9, {chaos.terms} TERMed (exit statuses {chaos.term_statuses})\n"
        f"timeline: {'; '.join(chaos.timeline)}\n"
        f"lost: {len(lost)} {lost[:10]}; still in flight: {in_flight}\n"
        f"duplicates: {len(duplicates)} jobs ran more than once, "
        f"{sum(duplicates.values()) - len(duplicates)} extra runs\n"
        f"dead: {len(poison_pills)} jobs (poison pills), "
        f"{len(chaos.garbage) - len(missing_garbage)} of {len(chaos.garbage)} garbage entries\n"
        f"orphans: {len(chaos.orphans)} lists holding {sum(o.jobs for o in chaos.orphans)} "
        f"jobs, recovered after (s): "
        f"{[round(t, 2) if t is not None else None for t in times]} "
        f"(bound {RECOVERY_BOUND} s)\n"
        f"runs kept across the Redis restart: {chaos.runs_kept_across_restart}; "
        f"workers that exited on their own: {len(chaos.exited_on_their_own)}; "
        f"logs with a thread that died: {thread_deaths}"
    )
    assert not chaos.exited_on_their_own, chaos.exited_on_their_own
    assert chaos.term_statuses == [0] * (chaos.terms + 2) and not chaos.stopping
    assert not thread_deaths
    assert lost == []
    assert missing_garbage == []
    assert all(runs.get(jid) for jid in chaos.must_run), "the non-UTF-8 jobs ran"
    assert chaos.runs_kept_across_restart
    assert chaos.kills and chaos.terms and chaos.orphans, "the scenario struck as planned"
    assert all(t is not None and t <= RECOVERY_BOUND for t in times), times
