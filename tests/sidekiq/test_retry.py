import base64
import json
import zlib

import pytest

from pudding.sidekiq import ids, payload
from pudding.sidekiq.config import WorkerConfig
from pudding.sidekiq.fetch import ReliableFetch, UnitOfWork
from pudding.sidekiq.job import Job
from pudding.sidekiq.redis_connection import create_redis
from pudding.sidekiq.retry import (
    JobRetry,
    UnknownJobClass,
    compress_backtrace,
    retry_delay,
    ruby_truthy,
)


class Failing(Job):
    exhausted: list[dict] = []

    def retries_exhausted(self, job, exc):
        self.exhausted.append(job)


class CustomDelay(Job):
    def retry_in(self, count, exc):
        return 1000


def fail(redis_url, job, queue="default", exc=None, job_class=Failing, **settings):
    """Run one failure through JobRetry, the job being in flight in `queue`."""
    redis = create_redis(redis_url, 2)
    fetch = ReliableFetch(redis, WorkerConfig(redis_url=redis_url, **settings), "host:1:abc")
    raw = payload.dump(job)
    redis.lpush(fetch.inflight_key(queue), raw)
    try:
        raise exc or RuntimeError("plain failure")
    except Exception as error:
        went = JobRetry(redis, fetch.config, fetch).failed(
            UnitOfWork(queue, raw), job, job_class, error, job_class and job_class()
        )
    assert redis.llen(fetch.inflight_key(queue)) == 0, "the failure must ack the job"
    return went


def base_job(**fields):
    return {
        "class": "Failing",
        "args": [1],
        "jid": ids.new_jid(),
        "queue": "default",
        "retry": True,
        "created_at": payload.now(),
        "enqueued_at": payload.now(),
        **fields,
    }


def test_ruby_truthiness():
    assert ruby_truthy(0) and ruby_truthy("") and ruby_truthy(True) and ruby_truthy(3)
    assert not ruby_truthy(False) and not ruby_truthy(None)


@pytest.mark.parametrize(
    "count, low, high", [(0, 15, 24), (1, 16, 34), (2, 31, 58), (24, 331_791, 332_016)]
)
def test_retry_delay_matches_sidekiq_6_ranges(count, low, high):
    delays = {retry_delay(count) for _ in range(2000)}
    assert min(delays) >= low and max(delays) <= high
    assert len(delays) == 10  # ten jitter steps


def test_first_failure_writes_the_fields_ruby_writes(r, redis_url):
    job = base_job()
    assert fail(redis_url, job) == "retry"
    [(member, score)] = r.zrange("retry", 0, -1, withscores=True)
    stored = json.loads(member)
    assert stored["error_message"] == "plain failure"
    assert stored["error_class"] == "RuntimeError"
    assert stored["retry_count"] == 0 and isinstance(stored["failed_at"], float)
    assert "retried_at" not in stored and "error_backtrace" not in stored
    assert 15 <= score - stored["failed_at"] <= 25


def test_later_failure_counts_up_and_keeps_failed_at(r, redis_url):
    job = base_job(retry_count=0, failed_at=123.5)
    fail(redis_url, job)
    stored = json.loads(r.zrange("retry", 0, -1)[0])
    assert stored["retry_count"] == 1 and stored["failed_at"] == 123.5
    assert isinstance(stored["retried_at"], float)


def test_retry_zero_goes_straight_to_dead(r, redis_url):
    assert fail(redis_url, base_job(retry=0)) == "dead"
    stored = json.loads(r.zrange("dead", 0, -1)[0])
    assert stored["retry_count"] == 0 and r.zcard("retry") == 0


def test_exhausted_retries_go_to_dead_and_call_the_hook(r, redis_url):
    Failing.exhausted.clear()
    job = base_job(retry=2, retry_count=1, failed_at=1.0)
    assert fail(redis_url, job) == "dead"
    assert json.loads(r.zrange("dead", 0, -1)[0])["retry_count"] == 2
    assert [j["jid"] for j in Failing.exhausted] == [job["jid"]]


@pytest.mark.parametrize("fields", [{"retry": False}, {"retry": 0, "dead": False}])
def test_no_retry_or_dead_false_leaves_no_trace(r, redis_url, fields):
    assert fail(redis_url, base_job(**fields)) == "discarded"
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_missing_retry_takes_the_class_option(r, redis_url):
    job = base_job()
    del job["retry"]
    fail(redis_url, job)
    assert json.loads(r.zrange("retry", 0, -1)[0])["retry"] is True


def test_retry_queue_and_custom_delay(r, redis_url):
    job = base_job(retry_queue="low")
    fail(redis_url, job, job_class=CustomDelay)
    [(member, score)] = r.zrange("retry", 0, -1, withscores=True)
    stored = json.loads(member)
    assert stored["queue"] == "low"
    assert 1000 <= score - stored["failed_at"] <= 1010


def test_backtrace_is_zlib_json_base64_innermost_first(r, redis_url):
    fail(redis_url, base_job(backtrace=1), exc=ValueError("boom"))
    stored = json.loads(r.zrange("retry", 0, -1)[0])
    compressed = base64.b64decode(stored["error_backtrace"])
    assert compressed[:2] == b"\x78\x9c"
    lines = json.loads(zlib.decompress(compressed))
    assert len(lines) == 1 and "in `fail'" in lines[0]
    assert stored["error_class"] == "ValueError"


def test_compress_backtrace_is_strict_base64():
    encoded = compress_backtrace(["a.py:1:in `x'"] * 100)
    assert "\n" not in encoded
    assert json.loads(zlib.decompress(base64.b64decode(encoded))) == ["a.py:1:in `x'"] * 100


def test_long_error_messages_are_cut_at_10000(r, redis_url):
    fail(redis_url, base_job(), exc=RuntimeError("x" * 20_000))
    assert len(json.loads(r.zrange("retry", 0, -1)[0])["error_message"]) == 10_000


def test_dead_set_is_trimmed_like_ruby(r, redis_url):
    from pudding.sidekiq.api import DeadSet

    dead = DeadSet(r, max_jobs=3)
    r.zadd("dead", {"ancient": 1.0})
    for n in range(5):
        dead.kill(f"job-{n}")
    assert r.zrange("dead", 0, -1) == ["job-3", "job-4"]  # Ruby keeps max_jobs - 1


HOUR = 3600.0


@pytest.mark.parametrize(
    "mode, fields, went",
    [
        # 7.1.3+: the count and the deadline both end retries.
        ("7", {"retry": 5, "retry_for": 60}, "retry"),
        ("7", {"retry": 5, "retry_count": 0, "failed_at": -HOUR, "retry_for": 60}, "dead"),
        ("7", {"retry": 1, "retry_count": 0, "failed_at": -1, "retry_for": HOUR}, "dead"),
        # 8.1: a job with a deadline retries until it passes, whatever its count.
        ("8", {"retry": 1, "retry_count": 0, "failed_at": -1, "retry_for": HOUR}, "retry"),
        ("8", {"retry": 5, "retry_count": 0, "failed_at": -HOUR, "retry_for": 60}, "dead"),
        ("8", {"retry": 1, "retry_count": 0, "failed_at": -1}, "dead"),
    ],
)
def test_retry_for_in_both_modes(redis_url, mode, fields, went):
    if "failed_at" in fields:
        fields = {**fields, "failed_at": payload.now() + fields["failed_at"]}
    assert fail(redis_url, base_job(**fields), retry_for_mode=mode) == went


def test_retry_for_reads_sidekiq_8_milliseconds(redis_url):
    failed_at = int((payload.now() - HOUR) * 1000)
    job = base_job(retry_count=0, failed_at=failed_at, retry_for=60)
    assert fail(redis_url, job, retry_for_mode="8") == "dead"


def test_an_unknown_class_retries_even_without_a_retry_option(r, redis_url):
    job = base_job(**{"class": "Billing::Later"})
    del job["retry"]
    assert fail(redis_url, job, exc=UnknownJobClass("Billing::Later"), job_class=None) == "retry"
    stored = json.loads(r.zrange("retry", 0, -1)[0])
    assert stored["retry"] is True and stored["error_class"] == "NameError"
    assert stored["error_message"] == "uninitialized constant Billing::Later"


def test_fields_a_producer_got_wrong_are_read_as_absent(r, redis_url):
    job = base_job(retry_count="three", retry_queue=["low"])
    assert fail(redis_url, job) == "retry"
    stored = json.loads(r.zrange("retry", 0, -1)[0])
    assert stored["retry_count"] == 0 and stored["queue"] == "default"
