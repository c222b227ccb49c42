import json
import threading

import pytest

from pudding.sidekiq import Client, payload
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch
from pudding.sidekiq.redis_connection import create_redis
from pudding.sidekiq.scheduled import Poller


def make_poller(redis_url, **settings):
    config = WorkerConfig(redis_url=redis_url, **settings)
    redis = create_redis(redis_url, 4)
    return Poller(redis, config, ReliableFetch(redis, config, "h:1:x"), threading.Event())


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


def test_garbage_in_a_sorted_set_goes_to_the_dead_set(r, redis_url):
    r.zadd("schedule", {"not json": 1})
    make_poller(redis_url).enqueue_due()
    assert r.zrange("dead", 0, -1) == ["not json"] and r.zcard("schedule") == 0


@pytest.mark.parametrize("processes, low, high", [(1, 2.5, 7.5), (2, 5, 15), (12, 0, 60)])
def test_poll_interval_scales_with_the_process_count(r, redis_url, processes, low, high):
    r.sadd("processes", *[f"p{n}" for n in range(processes)])
    poller = make_poller(redis_url)
    intervals = [poller._random_interval() for _ in range(500)]
    assert low <= min(intervals) and max(intervals) <= high
    assert max(intervals) - min(intervals) > (high - low) * 0.8
