"""A worker running in this process against the real Redis."""

import json
import threading
import time

from pudding.sidekiq import Client, Job
from pudding.sidekiq.api import ProcessSet, Stats
from tests.support import wait_for

ran: list[tuple[str, tuple]] = []
release = threading.Event()


class Record(Job):
    def perform(self, *args):
        ran.append((self.jid, args))


class TakesOne(Job):
    def perform(self, only):
        ran.append((self.jid, (only,)))


class Blocking(Job):
    sidekiq_options = {"queue": "default"}

    def perform(self):
        release.wait(10)
        ran.append((self.jid, ()))


class Fails(Job):
    sidekiq_options = {"retry": 1}

    def perform(self):
        raise RuntimeError("nope")


class Exits(Job):
    def perform(self):
        raise SystemExit(3)


def setup_function():
    ran.clear()
    release.clear()


def test_runs_jobs_and_acks_them(r, start_worker):
    launcher = start_worker(Record)
    jids = [Client(r).perform_async(Record, n, "x") for n in range(20)]
    wait_for(lambda: len(ran) == 20, message="20 jobs to run", timeout=10)
    assert sorted(jid for jid, _ in ran) == sorted(jids)
    assert (jids[0], (0, "x")) in ran
    wait_for(
        lambda: r.llen(launcher.fetch.inflight_key("default")) == 0, message="acks", timeout=10
    )


def test_garbage_never_stops_the_worker(r, start_worker):
    start_worker(Record, TakesOne)
    client = Client(r)
    r.lpush("queue:default", "not json {")
    r.lpush("queue:default", "[1, 2]")
    r.lpush("queue:default", json.dumps({"class": "Record", "args": "not a list", "jid": "a" * 24}))
    client.push({"class": "NoSuchJob", "args": [1]})
    client.perform_async(TakesOne, 1, 2, 3)  # wrong arity
    jid = client.perform_async(Record, "after")
    wait_for(lambda: (jid, ("after",)) in ran, message="the good job after the garbage", timeout=10)
    wait_for(lambda: r.zcard("dead") == 3, message="three dead jobs", timeout=10)
    dead = r.zrange("dead", 0, -1)
    assert "not json {" in dead and "[1, 2]" in dead
    errors = {json.loads(m)["error_message"] for m in dead if m.startswith("{")}
    assert errors == {"job payload has no 'args' list"}
    wait_for(lambda: r.zcard("retry") == 2, message="two retries", timeout=10)
    retries = {json.loads(m)["class"]: json.loads(m) for m in r.zrange("retry", 0, -1)}
    assert retries["TakesOne"]["error_class"] == "TypeError"
    # A class of a newer release, perhaps: it waits for a worker that knows it, as in Ruby.
    unknown = retries["NoSuchJob"]
    assert (unknown["error_class"], unknown["error_message"]) == (
        "NameError",
        "uninitialized constant NoSuchJob",
    )
    assert unknown["retry_count"] == 0 and isinstance(unknown["failed_at"], float)


def test_failed_job_is_retried_by_the_poller_then_dies(r, start_worker):
    start_worker(Fails)
    jid = Client(r).perform_async(Fails)
    wait_for(lambda: r.zcard("retry") == 1, message="the first failure", timeout=10)
    r.zadd("retry", {r.zrange("retry", 0, 0)[0]: 0})  # due now
    wait_for(lambda: r.zcard("dead") == 1, message="the job to die after its one retry", timeout=10)
    job = json.loads(r.zrange("dead", 0, -1)[0])
    assert job["jid"] == jid and job["retry_count"] == 1 and "retried_at" in job
    wait_for(
        lambda: Stats.read(r).failed == 2 and Stats.read(r).processed == 2,
        message="stats",
        timeout=10,
    )


def test_error_handlers_hear_of_failures(r, redis_url, worker_config):
    from pudding.sidekiq.job import Registry
    from pudding.sidekiq.launcher import Launcher
    from pudding.sidekiq.redis_connection import create_redis

    reports = []
    launcher = Launcher(worker_config, create_redis(redis_url, 10), Registry([Fails]))
    launcher.error_handlers.append(lambda exc, context: reports.append((str(exc), context)))
    launcher.run()
    try:
        jid = Client(r).perform_async(Fails)
        wait_for(lambda: reports, message="an error report", timeout=10)
    finally:
        launcher.stop()
    [(message, context)] = reports
    assert message == "nope" and context["jid"] == jid and context["class"] == "Fails"
    assert context["queue"] == "default" and context["args"] == []


def test_scheduled_job_runs_when_due(r, start_worker):
    start_worker(Record)
    jid = Client(r).perform_in(0.5, Record, "later")
    assert r.zcard("schedule") == 1
    wait_for(lambda: (jid, ("later",)) in ran, message="the scheduled job", timeout=10)
    assert r.zcard("schedule") == 0


def test_heartbeat_shows_process_and_running_job(r, start_worker):
    launcher = start_worker(Blocking, concurrency=3, tag="blue")
    jid = Client(r).perform_async(Blocking)
    identity = launcher.identity
    wait_for(lambda: r.hget(identity, "busy") == "1", message="busy 1", timeout=10)
    fields = r.hgetall(identity)
    info = json.loads(fields["info"])
    assert info["identity"] == identity and info["concurrency"] == 3 and info["tag"] == "blue"
    assert info["queues"] == ["default"] and isinstance(info["started_at"], float)
    assert fields["quiet"] == "false" and int(fields["rss"]) > 0 and fields["concurrency"] == "3"
    assert 50 < r.ttl(identity) <= 60
    assert identity in r.smembers("processes")
    for key in (f"{identity}:workers", f"{identity}:work"):
        [entry] = r.hvals(key)
        work = json.loads(entry)
        assert work["queue"] == "default" and json.loads(work["payload"])["jid"] == jid
        assert isinstance(work["run_at"], int)
    release.set()
    wait_for(lambda: r.hget(identity, "busy") == "0", message="idle again", timeout=10)
    assert not r.exists(f"{identity}:work")


def test_quiet_and_stop_from_the_signals_list(r, start_worker):
    launcher = start_worker(Record)
    thread = threading.Thread(target=launcher.run_until_stopped)
    thread.start()
    processes = ProcessSet(r)
    processes.quiet(launcher.identity)
    wait_for(lambda: r.hget(launcher.identity, "quiet") == "true", message="quiet", timeout=10)
    Client(r).perform_async(Record)
    processes.stop(launcher.identity)
    thread.join(10)
    assert launcher.stopped.is_set()
    assert ran == [] and r.llen("queue:default") == 1, "a quiet worker fetches nothing"
    assert launcher.identity not in r.smembers("processes")


def test_stats_count_processed_and_failed(r, start_worker):
    start_worker(Record, Fails)
    client = Client(r)
    for _ in range(3):
        client.perform_async(Record)
    client.perform_async(Fails)
    wait_for(lambda: Stats.read(r).processed == 4, message="four processed", timeout=10)
    assert Stats.read(r).failed == 1
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert r.get(f"stat:processed:{day}") == "4"
    assert r.ttl(f"stat:processed:{day}") > 157_000_000


class NeedsService(Job):
    def __init__(self, service):
        self.service = service

    def perform(self, value):
        self.service.append(value)


def test_a_factory_hands_services_to_jobs_and_hooks_run(r, redis_url, worker_config):
    from pudding.sidekiq.job import Registry
    from pudding.sidekiq.launcher import Launcher
    from pudding.sidekiq.redis_connection import create_redis

    service: list[str] = []
    events: list[str] = []
    registry = Registry([NeedsService], factory=lambda job_class: job_class(service))
    launcher = Launcher(worker_config, create_redis(redis_url, 10), registry)
    for event in ("startup", "quiet", "shutdown"):
        launcher.on(event, lambda event=event: events.append(event))
    launcher.run()
    Client(r).perform_async(NeedsService, "hello")
    wait_for(lambda: service == ["hello"], message="the job to use its service", timeout=10)
    launcher.stop()
    assert events == ["startup", "quiet", "shutdown"]


def test_bytes_that_are_not_utf8_never_stop_the_worker(r, rb, start_worker):
    start_worker(Record)
    garbage = b"\xff\xfe\x00 not json \x80"
    rb.lpush("queue:default", garbage)
    rb.lpush("queue:default", b'{"class":"Record","args":["a\xffb"],"jid":"' + b"b" * 24 + b'"}')
    after = Client(r).perform_async(Record, "after")
    wait_for(lambda: (after, ("after",)) in ran, message="the job after the garbage", timeout=10)
    assert ("b" * 24, ("a\udcffb",)) in ran
    wait_for(lambda: rb.zrange("dead", 0, -1) == [garbage], message="the garbage, dead as it was")
    in_flight = rb.keys("pysidekiq:inflight|*")
    wait_for(lambda: sum(map(rb.llen, in_flight)) == 0, message="every job acked")


def test_a_thread_that_dies_stops_the_process_with_status_1(r, start_worker):
    launcher = start_worker(Exits)
    Client(r).perform_async(Exits)
    status: list[int] = []
    main = threading.Thread(target=lambda: status.append(launcher.run_until_stopped()))
    main.start()
    main.join(20)
    assert status == [1] and launcher.died in ("processor-1", "processor-2")
    # The job's failure was written before its thread went: no crash loop.
    [retry] = r.zrange("retry", 0, -1)
    assert json.loads(retry)["error_class"] == "SystemExit"


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class RaisesUnprintable(Job):
    def perform(self):
        raise Unprintable()


def test_an_exception_that_cannot_be_printed_is_still_a_failure(r, start_worker):
    start_worker(RaisesUnprintable, Record)
    Client(r).perform_async(RaisesUnprintable)
    after = Client(r).perform_async(Record, "after")
    wait_for(lambda: (after, ("after",)) in ran, message="the next job", timeout=10)
    wait_for(lambda: r.zcard("retry") == 1, message="the failure in the retry set", timeout=10)
    failure = json.loads(r.zrange("retry", 0, -1)[0])
    assert failure["error_message"] == "Unprintable"
    assert failure["error_class"].endswith("Unprintable")


def test_a_fault_of_the_engine_kills_the_job_and_spares_the_thread(r, rb, start_worker):
    launcher = start_worker(Record, concurrency=1)
    [processor] = launcher.processors
    honest = processor.process

    def faulty(work):
        processor.current = (work, 0)
        processor.process = honest  # once
        raise KeyError("a bug")

    processor.process = faulty
    doomed = Client(r).perform_async(Record, "doomed")
    wait_for(lambda: r.zcard("dead") == 1, message="the job, killed as it was", timeout=10)
    assert json.loads(rb.zrange("dead", 0, -1)[0])["jid"] == doomed
    after = Client(r).perform_async(Record, "after")
    wait_for(lambda: (after, ("after",)) in ran, message="the same thread to run on", timeout=10)
    assert doomed not in {jid for jid, _ in ran}
