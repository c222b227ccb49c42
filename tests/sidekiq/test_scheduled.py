import json
import threading

import pytest

from pudding.sidekiq import Client, payload
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.recovery import OrphanRecovery
from pudding.sidekiq.redis_connection import create_redis
from pudding.sidekiq.scheduled import Poller


def make_poller(redis_url, **settings):
    config = WorkerConfig(redis_url=redis_url, **settings)
    redis = create_redis(redis_url, 4)
    return Poller(redis, config, OrphanRecovery(redis, config, "h:1:x"), threading.Event())


def test_due_jobs_move_to_their_queue_with_a_new_enqueued_at(r, redis_url):
    client = Client(r)
    due = client.push({"class": "X", "args": [1], "queue": "q", "at": payload.now() - 1})
    later = client.perform_in(3600, "X", 2)
    r.zadd("retry", {payload.dump({"class": "X", "args": [], "jid": "r" * 24, "queue": "q"}): 1})
    assert make_poller(redis_url).enqueue_due() == 2
    jobs = [json.loads(raw) for raw in r.lrange("queue:q", 0, -1)]
    assert {job["jid"] for job in jobs} == {due, "r" * 24}
    assert all(isinstance(job["enqueued_at"], float) for job in jobs)
    assert "q" in r.smembers("queues")
    assert [json.loads(m)["jid"] for m in r.zrange("schedule", 0, -1)] == [later]


def test_two_pollers_never_push_a_job_twice(r, redis_url):
    r.zadd(
        "schedule", {payload.dump({"class": "X", "args": [n], "queue": "q"}): 1 for n in range(500)}
    )
    pollers = [make_poller(redis_url) for _ in range(2)]
    threads = [threading.Thread(target=p.enqueue_due) for p in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert r.llen("queue:q") == 500 and r.zcard("schedule") == 0


@pytest.mark.parametrize(
    "member",
    [
        b"not json",
        b"\xff\xfe\x00 \x80",
        b"[1,2]",
        b'{"class":"X","args":[],"queue":["q"]}',
        b'{"class":"X","args":[],"queue":"\\udcff"}',
    ],
)
def test_garbage_in_a_sorted_set_goes_to_the_dead_set_as_it_was(rb, redis_url, member):
    rb.zadd("schedule", {member: 1})
    make_poller(redis_url).enqueue_due()
    assert rb.zrange("dead", 0, -1) == [member] and rb.zcard("schedule") == 0


def test_a_job_with_bytes_that_are_not_utf8_moves_with_them(rb, redis_url):
    rb.zadd("retry", {b'{"class":"X","args":["a\xffb"],"queue":"q"}': 1})
    make_poller(redis_url).enqueue_due()
    [pushed] = rb.lrange("queue:q", 0, -1)
    assert payload.load(pushed)["args"] == ["a\udcffb"] and b'"a\xffb"' in pushed


@pytest.mark.parametrize("processes, low, high", [(1, 2.5, 7.5), (2, 5, 15), (12, 0, 60)])
def test_poll_interval_scales_with_the_live_process_count(r, redis_url, processes, low, high):
    for n in range(processes):
        r.sadd("processes", f"p{n}")
        r.hset(f"p{n}", "info", "{}")
    r.sadd("processes", "ghost:1:aaaaaaaaaaaa")  # crashed: its hash has expired
    poller = make_poller(redis_url, orphan_check_interval=3600)
    poller.cycle()
    assert "ghost:1:aaaaaaaaaaaa" not in r.smembers("processes")
    intervals = [poller._random_interval() for _ in range(500)]
    assert low <= min(intervals) and max(intervals) <= high
    assert max(intervals) - min(intervals) > (high - low) * 0.8
