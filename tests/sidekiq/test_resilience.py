"""The worker daemon against what kills workers: payloads that are not UTF-8 in flight when
their holder is killed -9, over and over; garbage left in a dead process's in-flight list;
a worker killed while it holds the recovery lock; members of `processes` whose heartbeat
expired."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import redis

from pudding.sidekiq import Client
from pudding.sidekiq.ids import new_jid
from tests.support import wait_for

from .conftest import WorkerProcess

REGISTRY = "pysidekiq:inflight-registry"
LOCK = "pysidekiq:recovery-lock"
# A process that died long ago: it has no process hash.
GHOST = "ghost:4242:0123456789ab"
# Longer than any test: a HoldJob is still running when its worker is killed.
HOLD = 120
POISON_PILL_LIMIT = 3


def job_bytes(job_class: str, jid: str, args: bytes, queue: str = "default") -> bytes:
    """A job as a client writes it, with `args` as raw JSON: it may hold bytes that no JSON
    encoder writes, such as a lone \\xff inside a string."""
    now = time.time()
    head = {
        "class": job_class,
        "queue": queue,
        "retry": True,
        "jid": jid,
        "created_at": now,
        "enqueued_at": now,
    }
    return json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"args":' + args + b"}"


def inflight(identity: str, queue: str = "default") -> str:
    return f"pysidekiq:inflight|{identity}|{queue}"


def register_orphans(rb: redis.Redis, identity: str, queue: str, entries: list[bytes]) -> str:
    """An in-flight list as a process that died left it; returns its key."""
    key = inflight(identity, queue)
    rb.rpush(key, *entries)
    rb.hset(REGISTRY, key, json.dumps({"identity": identity, "queue": queue}))
    return key


def identity_of(r: redis.Redis, worker: WorkerProcess) -> str:
    """The worker's identity, once its first heartbeat has put it in `processes`."""
    marker = f":{worker.process.pid}:"
    return wait_for(
        lambda: next((member for member in r.smembers("processes") if marker in member), None),
        message=f"worker {worker.process.pid} in processes",
    )


def assert_no_thread_died(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        output = worker.output()
        assert "thread died" not in output and "Exception in thread" not in output, output


def test_non_utf8_jobs_whose_holders_are_killed_six_times_end_dead(r, rb, spawn_worker):
    """Six kill -9s in a row, each of a worker holding a job whose JSON has a non-UTF-8 byte
    in a string: each worker lives until it is killed, each job runs in one worker per
    recovery until the poison-pill limit kills it to the dead set, the byte intact, and the
    worker left still runs jobs."""
    first, second = new_jid(), new_jid()
    jobs = {
        first: job_bytes("HoldJob", first, b'[%d,"caf\xff au lait"]' % HOLD),
        second: job_bytes("HoldJob", second, b'[%d,"lone \x80 byte",["\xfe"]]' % HOLD),
    }
    # What each of the six killed workers holds: `second` comes after two kills, so that
    # each job is in flight at POISON_PILL_LIMIT + 1 kills, the last of which kills it.
    holding = [{first}, {first}, {first, second}, {first, second}, {second}, {second}]
    fast_recovery = ("-c", "2", "--dead-process-timeout", "2", "--orphan-check-interval", "0.5")
    rb.lpush("queue:default", jobs[first])
    workers = [spawn_worker(*fast_recovery)]
    starts: Counter[str] = Counter()
    for kill, held in enumerate(holding, 1):
        if kill == 3:
            rb.lpush("queue:default", jobs[second])
        worker = workers[-1]
        key = inflight(identity_of(r, worker))
        expected = sorted(jobs[jid] for jid in held)
        starts.update(held)
        wait_for(
            lambda key=key, expected=expected, starts=Counter(starts): (
                sorted(rb.lrange(key, 0, -1)) == expected
                and Counter(r.lrange("started", 0, -1)) == starts
            ),
            message=f"worker {kill} to hold and run exactly {sorted(held)}",
        )
        assert worker.process.poll() is None, worker.output()
        worker.process.kill()
        assert worker.wait(10) == -signal.SIGKILL, worker.output()
        workers.append(spawn_worker(*fast_recovery))
    wait_for(lambda: rb.zcard("dead") == 2, message="both jobs in the dead set")
    dead = rb.zrange("dead", 0, -1)
    by_jid = {json.loads(raw.decode("utf-8", "surrogateescape"))["jid"]: raw for raw in dead}
    assert set(by_jid) == {first, second}
    assert b'"caf\xff au lait"' in by_jid[first]
    assert b'"lone \x80 byte",["\xfe"]' in by_jid[second]
    for raw in dead:
        job = json.loads(raw.decode("utf-8", "surrogateescape"))
        assert (job["class"], job["error_class"]) == ("HoldJob", "PoisonPill"), job
    runs = POISON_PILL_LIMIT + 1
    assert Counter(r.lrange("started", 0, -1)) == {first: runs, second: runs}
    assert rb.llen("queue:default") == 0 and rb.zcard("retry") == 0
    last = workers[-1]
    jid = Client(r).perform_async("RecordJob")
    wait_for(lambda: r.lrange("ran", 0, -1) == [jid], message="the last worker to run a job")
    assert last.process.poll() is None, last.output()
    assert_no_thread_died(workers)


def test_random_bytes_left_in_flight_by_a_dead_process_end_dead_byte_identical(r, rb, spawn_worker):
    """Bytes that are no job, left in flight by a process that died: a starting worker
    recovers them, and they end in the dead set exactly as they were, the worker unharmed."""
    raw = b"\xff\xfe not json \x00 \x80\xc3("
    key = register_orphans(rb, GHOST, "default", [raw])
    worker = spawn_worker("-c", "1")
    wait_for(lambda: rb.zrange("dead", 0, -1) == [raw], message="the bytes in the dead set")
    assert not rb.exists(key) and not rb.hexists(REGISTRY, key)
    assert rb.llen("queue:default") == 0
    jid = Client(r).perform_async("RecordJob")
    wait_for(lambda: r.lrange("ran", 0, -1) == [jid], message="the worker to run a job")
    assert worker.process.poll() is None, worker.output()
    assert_no_thread_died([worker])


def test_a_worker_killed_mid_recovery_holds_the_next_one_up_by_seconds_only(r, rb, spawn_worker):
    """A worker killed -9 while it recovers leaves the recovery lock behind; another worker
    must still recover what is left, and what the killed one held, within
    dead-process-timeout + 5 s of the kill."""
    dead_process_timeout = 3
    bound = dead_process_timeout + 5
    orphans = 1000  # about half a second of recovery: the moment to kill its worker
    args = (
        "-c",
        "1",
        "--dead-process-timeout",
        str(dead_process_timeout),
        "--orphan-check-interval",
        "0.5",
    )
    held = Client(r).perform_async("HoldJob", HOLD)
    doomed = spawn_worker(*args)
    wait_for(lambda: r.lrange("started", 0, -1) == [held], message="the held job to start")
    doomed_list = inflight(identity_of(r, doomed))
    # Jobs for a queue that no worker serves, so they stay where recovery puts them.
    ghost_list = register_orphans(
        rb,
        GHOST,
        "parked",
        [job_bytes("RecordJob", new_jid(), b"[]", "parked") for _ in range(orphans)],
    )
    wait_for(lambda: rb.exists("queue:parked"), message="the recovery to start", interval=0.001)
    doomed.process.kill()
    killed_at = time.monotonic()
    doomed.wait(10)
    assert r.exists(LOCK), "the killed worker held the recovery lock"
    assert rb.llen(ghost_list) > 0, "the killed worker was still recovering"
    spawn_worker(*args)
    wait_for(
        lambda: not rb.exists(doomed_list, ghost_list),
        message="both in-flight lists to be recovered",
        timeout=2 * bound,
    )
    recovered_after = time.monotonic() - killed_at
    print(f"recovered {recovered_after:.2f} s after the kill (bound {bound} s)")
    assert recovered_after <= bound
    assert rb.llen("queue:parked") == orphans and not rb.hexists(REGISTRY, ghost_list)
    wait_for(
        lambda: r.lrange("started", 0, -1) == [held, held], message="the held job to run again"
    )


def await_next_poll(r: redis.Redis) -> None:
    """Return once a whole scheduler poll has run since the call. Of two due jobs, each
    scheduled once the one before has moved, the second moves in a later poll than the
    first: by then the poll that moved the first, which began after the call, is over."""
    for _ in range(2):
        raw = job_bytes("RecordJob", new_jid(), b"[]", "parked")
        r.zadd("schedule", {raw: time.time() - 1})
        wait_for(lambda raw=raw: r.zscore("schedule", raw) is None, message="a scheduler poll")


def test_each_poll_drops_processes_whose_heartbeat_expired(r, spawn_worker):
    """`processes` keeps live identities (ours, and another's with a fresh hash) and loses,
    at the next scheduler poll, those whose process hash is gone or has just expired."""
    worker = spawn_worker("-c", "1")
    own = identity_of(r, worker)
    live, expiring, gone = "far:1:aaaaaaaaaaaa", "far:2:bbbbbbbbbbbb", "far:3:cccccccccccc"
    beat = {"info": json.dumps({"hostname": "far"}), "beat": time.time(), "busy": 0}
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(live, mapping=beat).expire(live, 60)
        pipe.hset(expiring, mapping=beat).pexpire(expiring, 3000)
        pipe.sadd("processes", live, expiring, gone)
        pipe.execute()
    await_next_poll(r)
    with r.pipeline(transaction=True) as pipe:
        still_beating, members = pipe.exists(expiring).smembers("processes").execute()
    assert gone not in members and {own, live} <= members
    assert not still_beating or expiring in members, "a live process was dropped"
    wait_for(lambda: not r.exists(expiring), message="the heartbeat to expire")
    await_next_poll(r)
    members = r.smembers("processes")
    assert expiring not in members and {own, live} <= members
    assert worker.process.poll() is None, worker.output()
    assert_no_thread_died([worker])
