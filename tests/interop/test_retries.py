"""Acceptance 2: our failures look like Ruby's, and Ruby's retry/kill/delete drive our worker."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
import redis
from harness import INTEROP_DIR, JOBS_RB, ran, wait_until
from pyjobs import DoomedJob, FailJob, FlakyJob

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby

# Reads a sorted set through Ruby's API: each entry's raw hash, the Ruby class of each field,
# its score and its backtrace as Ruby decodes it.
READ_SET = """
Sidekiq.const_get(ARGS["set"]).new.map { |e|
  { "item" => e.item, "types" => e.item.transform_values { |v| v.class.name },
    "score" => e.score, "backtrace" => e.error_backtrace, "retry_count" => e["retry_count"] }
}
"""

# Sidekiq 6.4.1 JobRetry#delay_for: count**4 + 15 + rand(10) * (count + 1).
FIRST_RETRY_DELAY = (15, 24)


def by_class(entries: list[dict]) -> dict[str, dict]:
    return {entry["item"]["class"]: entry for entry in entries}


def test_our_retry_entry_has_the_fields_ruby_writes(
    r: redis.Redis, ruby, ruby_sidekiq, pudding_worker
) -> None:
    rb = ruby_sidekiq(queues=["rb"])
    py = pudding_worker(queues=["py"])
    before = time.time()
    ruby('RubyFailJob.perform_async("x", 1)')
    jid = Client(r).perform_async(FailJob, "x", 1)
    wait_until(lambda: r.zcard("retry") == 2, 30, "both failures to reach `retry`",
               alive=[rb.process, py.process])

    entries = by_class(ruby(READ_SET, set="RetrySet"))
    theirs, ours = entries["RubyFailJob"], entries["FailJob"]
    assert sorted(ours["item"]) == sorted(theirs["item"])
    assert ours["types"] == theirs["types"]
    assert theirs["types"]["failed_at"] == "Float" and theirs["types"]["retry_count"] == "Integer"

    item = ours["item"]
    assert (item["jid"], item["queue"], item["args"], item["retry"], item["backtrace"]) == (
        jid, "py", ["x", 1], 1, True,
    )
    assert (item["error_class"], item["retry_count"]) == ("ValueError", 0)
    assert item["error_message"] == "boom ['x', 1]"
    assert before <= item["created_at"] <= item["enqueued_at"] <= item["failed_at"] <= time.time()
    low, high = FIRST_RETRY_DELAY
    for entry in (ours, theirs):
        assert low - 0.5 <= entry["score"] - entry["item"]["failed_at"] <= high + 0.5
    # Ruby inflates our compressed backtrace into lines, as it does its own.
    assert theirs["backtrace"] and all(isinstance(line, str) for line in theirs["backtrace"])
    assert ours["backtrace"] and all(isinstance(line, str) for line in ours["backtrace"])
    # Innermost frame first, in Ruby's "file:line:in `method'" form.
    for entry, source in ((theirs, JOBS_RB), (ours, INTEROP_DIR / "pyjobs.py")):
        assert re.fullmatch(rf"{re.escape(str(source))}:\d+:in `perform'", entry["backtrace"][0])

    # A failed retry adds `retried_at`, and the same keys on both sides again.
    ruby("ARGS['jids'].each { |jid| Sidekiq::RetrySet.new.find_job(jid).retry }",
         jids=[theirs["item"]["jid"], jid])
    wait_until(lambda: all("retried_at" in raw for raw in r.zrange("retry", 0, -1))
               and r.zcard("retry") == 2, 30, "both retries to fail again",
               alive=[rb.process, py.process])
    entries = by_class(ruby(READ_SET, set="RetrySet"))
    theirs, ours = entries["RubyFailJob"], entries["FailJob"]
    assert ours["types"] == theirs["types"] and theirs["types"]["retried_at"] == "Float"
    assert ours["item"]["retry_count"] == theirs["item"]["retry_count"] == 0

    # And the dead set: Ruby's retry-0 job against ours.
    ruby("RubyDoomedJob.perform_async")
    Client(r).perform_async(DoomedJob)
    wait_until(lambda: r.zcard("dead") == 2, 30, "both retry-0 jobs in `dead`",
               alive=[rb.process, py.process])
    entries = by_class(ruby(READ_SET, set="DeadSet"))
    theirs, ours = entries["RubyDoomedJob"], entries["DoomedJob"]
    assert ours["types"] == theirs["types"]
    assert ours["item"]["retry"] == theirs["item"]["retry"] == 0
    assert ours["item"]["error_class"] == theirs["item"]["error_class"] == "RuntimeError"
    assert ours["item"]["error_message"] == theirs["item"]["error_message"] == "doomed"


def test_ruby_retry_kill_and_delete_act_on_our_retry_entries(
    r: redis.Redis, ruby, pudding_worker
) -> None:
    py = pudding_worker(queues=["py"])
    client = Client(r)
    jids = {name: client.perform_async(FailJob, name) for name in ("retry", "kill", "delete")}
    jids["flaky"] = client.perform_async(FlakyJob, "flaky")
    wait_until(lambda: r.zcard("retry") == 4, 20, "4 failures in `retry`", alive=[py.process])
    first = {entry["item"]["jid"]: entry["item"] for entry in ruby(READ_SET, set="RetrySet")}

    ruby(
        """
        retries = Sidekiq::RetrySet.new
        retries.find_job(ARGS["retry"]).retry
        retries.find_job(ARGS["kill"]).kill
        retries.find_job(ARGS["delete"]).delete
        retries.find_job(ARGS["flaky"]).retry
        """,
        **jids,
    )

    def runs() -> Counter[str]:
        return Counter(run["jid"] for run in ran(r, "py:ran"))

    wait_until(lambda: runs()[jids["retry"]] == 2 and runs()[jids["flaky"]] == 2
               and r.zcard("retry") == 1, 20, "the retried jobs to run again",
               alive=[py.process])
    assert runs() == {jids["retry"]: 2, jids["flaky"]: 2, jids["kill"]: 1, jids["delete"]: 1}

    dead = {entry["item"]["jid"]: entry["item"] for entry in ruby(READ_SET, set="DeadSet")}
    assert dead == {jids["kill"]: first[jids["kill"]]}  # Kill moves the entry unchanged

    # "Retry now" gives back the retry it takes (Ruby decrements retry_count before the push),
    # so the job failed again with retry_count 0 and is waiting for its one real retry.
    [again] = ruby(READ_SET, set="RetrySet")
    original, item = first[jids["retry"]], again["item"]
    assert item["jid"] == jids["retry"] and item["retry_count"] == 0
    assert again["types"]["retried_at"] == "Float"
    assert item["failed_at"] == original["failed_at"] < item["retried_at"]
    assert item["created_at"] == original["created_at"]
    assert item["enqueued_at"] > original["enqueued_at"]

    # Make that retry due now. Ruby's ZINCRBY re-serialises the job: it hits our member only
    # if our JSON bytes are exactly what Ruby's JSON.generate makes of them.
    ruby("e = Sidekiq::RetrySet.new.find_job(ARGS['jid']); e.reschedule(Time.now.to_f)",
         jid=jids["retry"])
    assert r.zcard("retry") == 1
    wait_until(lambda: r.zcard("dead") == 2, 20, "the last retry to fail into `dead`",
               alive=[py.process])
    assert runs()[jids["retry"]] == 3 and r.zcard("retry") == 0

    dead = {entry["item"]["jid"]: entry for entry in ruby(READ_SET, set="DeadSet")}
    exhausted = dead[jids["retry"]]["item"]
    assert exhausted["retry_count"] == 1 and exhausted["failed_at"] == original["failed_at"]
    assert exhausted["retried_at"] > item["retried_at"]
    assert (exhausted["error_class"], exhausted["queue"]) == ("ValueError", "py")

    wait_until(lambda: r.get("stat:processed") == "7", 10, "the counters to be flushed")
    assert ruby("s = Sidekiq::Stats.new; [s.processed, s.failed, s.retry_size, s.dead_size]") == [
        7, 6, 0, 2,
    ]


def test_retry_zero_goes_straight_to_ruby_dead_set(r: redis.Redis, ruby, pudding_worker) -> None:
    py = pudding_worker(queues=["py"])
    jid = Client(r).perform_async(DoomedJob, "once")
    wait_until(lambda: r.zcard("dead") == 1, 20, "the job in `dead`", alive=[py.process])
    [entry] = ruby(READ_SET, set="DeadSet")
    assert entry["item"]["jid"] == jid and entry["retry_count"] == 0
    assert (entry["item"]["error_class"], entry["item"]["error_message"]) == (
        "RuntimeError", "doomed",
    )
    assert entry["item"]["failed_at"] <= entry["score"] <= time.time()
    assert any("pyjobs.py" in line for line in entry["backtrace"])
    assert r.zcard("retry") == 0

    # "Retry now" from the morgue hands it back to our worker, which runs it again.
    ruby("Sidekiq::DeadSet.new.find_job(ARGS['jid']).retry", jid=jid)
    wait_until(lambda: len(ran(r, "py:ran")) == 2, 20, "the job to run again",
               alive=[py.process])
