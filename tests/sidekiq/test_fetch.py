import json
import threading
from collections import Counter

import redis

from pudding.sidekiq import Client, payload
from pudding.sidekiq.config import QueueSpec, WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch
from pudding.sidekiq.recovery import OrphanRecovery
from pudding.sidekiq.redis_connection import create_redis


def make_fetch(redis_url, *queues, identity="host:1:aaaaaaaaaaaa", **settings):
    config = WorkerConfig(redis_url=redis_url, queues=tuple(queues), **settings)
    return ReliableFetch(create_redis(redis_url, 4), config, identity)


def test_fetch_moves_jobs_into_the_in_flight_list_and_acks(r, rb, redis_url):
    fetch = make_fetch(redis_url, QueueSpec("default"))
    jid = Client(r).perform_async("X")
    work = fetch.retrieve(threading.Event())
    assert json.loads(work.job)["jid"] == jid and work.queue == "default"
    inflight = "pysidekiq:inflight|host:1:aaaaaaaaaaaa|default"
    assert rb.lrange(inflight, 0, -1) == [work.job] and r.llen("queue:default") == 0
    assert "pysidekiq:inflight|host:1:aaaaaaaaaaaa|default" not in r.smembers("queues")
    fetch.ack(work)
    fetch.flush_acks()
    assert r.llen(inflight) == 0


def test_strict_order_drains_the_first_queue_first(r, redis_url):
    fetch = make_fetch(redis_url, QueueSpec("high"), QueueSpec("low"))
    client = Client(r)
    for queue in ("low", "high", "low", "high"):
        client.push({"class": "X", "args": [], "queue": queue})
    stop = threading.Event()
    assert [fetch.retrieve(stop).queue for _ in range(4)] == ["high", "high", "low", "low"]


def test_weighted_order_favours_heavier_queues(r, redis_url):
    fetch = make_fetch(redis_url, QueueSpec("heavy", 3), QueueSpec("light", 1))
    firsts = Counter(fetch._queue_order()[0] for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80  # 3 of 4 draws


def test_requeue_puts_jobs_back_where_they_are_fetched_next(r, redis_url):
    fetch = make_fetch(redis_url, QueueSpec("default"))
    client = Client(r)
    first = client.perform_async("X")
    second = client.perform_async("X")
    work = fetch.retrieve(threading.Event())
    fetch.requeue([work])
    assert json.loads(r.lindex("queue:default", -1))["jid"] == first
    assert json.loads(r.lindex("queue:default", 0))["jid"] == second
    assert r.llen(fetch.inflight_key("default")) == 0


def orphan(r, identity, queue, raw):
    """An in-flight list of `identity`, registered, holding `raw`."""
    key = f"pysidekiq:inflight|{identity}|{queue}"
    r.lpush(key, raw)
    r.hset("pysidekiq:inflight-registry", key, json.dumps({"identity": identity, "queue": queue}))
    return key


def recover(redis_url, **settings):
    config = WorkerConfig(redis_url=redis_url, **settings)
    return OrphanRecovery(create_redis(redis_url, 2), config, "host:1:aaaaaaaaaaaa").run()


def test_orphans_of_a_dead_process_go_back_to_their_queue(r, rb, redis_url):
    raw = payload.dump({"class": "X", "args": [], "jid": "a" * 24, "queue": "default"})
    key = orphan(r, "gone:1:bbbbbbbbbbbb", "default", raw)
    alive = orphan(r, "live:2:cccccccccccc", "default", "live job")
    r.hset("live:2:cccccccccccc", mapping={"info": "{}", "beat": payload.now()})
    assert recover(redis_url) == 1
    assert rb.lrange("queue:default", 0, -1) == [raw]
    assert not r.exists(key) and r.lrange(alive, 0, -1) == ["live job"]
    assert set(r.hkeys("pysidekiq:inflight-registry")) == {alive}


def test_a_job_recovered_too_often_is_killed_as_a_poison_pill(r, redis_url):
    job = {"class": "X", "args": [], "jid": "d" * 24, "queue": "default"}
    r.set(f"pysidekiq:recovered:{'d' * 24}", 3)
    orphan(r, "gone:1:bbbbbbbbbbbb", "default", payload.dump(job))
    recover(redis_url, poison_pill_limit=3)
    assert r.llen("queue:default") == 0
    dead = json.loads(r.zrange("dead", 0, -1)[0])
    assert dead["jid"] == "d" * 24 and dead["error_class"] == "PoisonPill"
    assert "4 worker processes that died" in dead["error_message"]
    assert isinstance(dead["failed_at"], float) and dead["retry_count"] == 0


def test_a_silent_process_is_dead_after_the_timeout(r, redis_url):
    key = orphan(r, "stuck:1:eeeeeeeeeeee", "default", "job")
    r.hset("stuck:1:eeeeeeeeeeee", mapping={"info": "{}", "beat": payload.now() - 30})
    assert recover(redis_url) == 0
    assert recover(redis_url, dead_process_timeout=10) == 1
    assert not r.exists(key)


def test_rediss_urls_use_tls():
    redis = create_redis("rediss://:secret@example.com:6380/3", 2)
    kwargs = redis.connection_pool.connection_kwargs
    assert redis.connection_pool.connection_class.__name__ == "SSLConnection"
    assert (kwargs["password"], kwargs["db"], kwargs["port"]) == ("secret", 3, 6380)


def test_jobs_of_a_fetch_whose_reply_was_lost_go_back_to_their_queue(r, rb, redis_url):
    """Redis ran the fetch but went down before it answered: the jobs it moved sit in our
    in-flight list, unknown to every thread. The next fetch puts them back first."""
    fetch = make_fetch(redis_url, QueueSpec("default"), concurrency=1)
    client = Client(r)
    held = client.perform_async("X")
    mine = fetch.retrieve(threading.Event())
    lost = [client.perform_async("X") for _ in range(2)]
    script = fetch._script

    def reply_lost(**kwargs):
        fetch._script = script  # once
        script(**kwargs)
        raise redis.ConnectionError("Connection closed by server.")

    fetch._script = reply_lost
    again = fetch.retrieve(threading.Event())
    assert json.loads(mine.job)["jid"] == held
    assert json.loads(again.job)["jid"] == lost[0]
    listed = [json.loads(raw)["jid"] for raw in rb.lrange(fetch.inflight_key("default"), 0, -1)]
    assert sorted(listed) == sorted([held, lost[0]])
    assert [json.loads(raw)["jid"] for raw in rb.lrange("queue:default", 0, -1)] == [lost[1]]


def test_a_clean_stop_leaves_no_job_in_flight(r, rb, redis_url):
    fetch = make_fetch(redis_url, QueueSpec("default"))
    jid = Client(r).perform_async("X")
    work = fetch.retrieve(threading.Event())
    rb.lpush(fetch.inflight_key("default"), b"a stray")
    fetch.ack(work)
    fetch.settle()
    assert rb.lrange(fetch.inflight_key("default"), 0, -1) == []
    assert rb.lrange("queue:default", 0, -1) == [b"a stray"]
    assert jid not in r.lrange("queue:default", 0, -1)
