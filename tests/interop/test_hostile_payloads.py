"""Payloads a worker cannot run as they are: bytes that are not JSON, invalid UTF-8 inside a
job, a class this worker does not know. None of them may stop the worker or be lost, and
Ruby's API and Web must read where they went."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import redis
import redis.connection
import redis.utils
from harness import SidekiqProcess, ran, wait_until
from pyjobs import EchoJob
from redis._parsers.hiredis import _HiredisParser

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby

# Not JSON, not UTF-8: NUL, 0xff/0xfe, a lone continuation byte, then every byte value.
GARBAGE = b"\xff\xfe\x00 not json \x80" + bytes(range(256))
# Sidekiq 6.4.1 JobRetry#delay_for: count**4 + 15 + rand(10) * (count + 1).
FIRST_RETRY_DELAY = (15, 24)


def in_flight(r: redis.Redis, worker: SidekiqProcess) -> int:
    """Jobs a worker fetched and has not acked yet, over the in-flight lists it registered."""
    lists = [key for key, owner in r.hgetall("pysidekiq:inflight-registry").items()
             if json.loads(owner)["identity"] == worker.identity]
    assert lists, f"{worker.identity} registered no in-flight list"
    return sum(r.llen(key) for key in lists)


def log_records(worker: SidekiqProcess) -> list[dict[str, Any]]:
    """The worker's JSON log lines (its output is not a terminal, so every line is JSON),
    those it has finished writing."""
    written = worker.process.output().rpartition("\n")[0]
    return [json.loads(line) for line in written.splitlines() if line.startswith("{")]


def test_garbage_and_invalid_utf8_do_not_stop_the_worker(
    r: redis.Redis, rb: redis.Redis, ruby, web, pudding_worker
) -> None:
    """A producer's bad bytes must neither be lost nor altered, nor stop the jobs behind them."""
    # The bytes path under test is hiredis's: the worker runs on this interpreter.
    assert redis.utils.HIREDIS_AVAILABLE
    assert redis.connection.DefaultParser is _HiredisParser
    # One processor thread: if a bad entry killed it or wedged the fetch, nothing else runs.
    worker = pudding_worker(queues=["py"], concurrency=1)
    rb.sadd("queues", "py")
    before = time.time()
    rb.lpush("queue:py", GARBAGE)
    # Valid JSON whose string holds a byte that is not UTF-8, as a non-Ruby producer may write.
    bad_jid = "0123456789abcdef01234567"
    job = {"class": "EchoJob", "queue": "py", "args": ["a?b"], "jid": bad_jid, "retry": True,
           "created_at": before, "enqueued_at": before}
    invalid_utf8 = json.dumps(job, separators=(",", ":")).encode().replace(b"a?b", b"a\xffb")
    rb.lpush("queue:py", invalid_utf8)
    next_jid = Client(r).perform_async(EchoJob, "next")

    runs = wait_until(lambda: len(ran(r, "py:ran")) == 2 and ran(r, "py:ran"), 20,
                      "the invalid-UTF-8 job and the next one to run", alive=[worker.process])
    assert [run["jid"] for run in runs] == [bad_jid, next_jid]
    [arg] = runs[0]["args"]
    assert (len(arg), arg[0], arg[2]) == (3, "a", "b"), arg  # only the bad byte may be replaced
    assert runs[1]["args"] == ["next"]
    wait_until(lambda: in_flight(r, worker) == 0, 10, "both jobs to be acked",
               alive=[worker.process])
    [(member, score)] = rb.zrange("dead", 0, -1, withscores=True)
    assert member == GARBAGE
    assert before <= score <= time.time()
    assert r.llen("queue:py") == r.zcard("retry") == r.zcard("schedule") == 0
    # The line follows the kill, through the worker's log-writer thread: wait for it.
    wait_until(
        lambda: any(record.get("level") == "error" for record in log_records(worker)), 10,
        "an error logged for the entry sent to the dead set", alive=[worker.process],
    )

    # Ruby reads invalid JSON as an entry with an empty item and the raw value as its args.
    [entry] = ruby(
        """
        Sidekiq::DeadSet.new.map { |e|
          { "value" => e.value.bytes, "args" => e.args.map(&:bytes), "item" => e.item,
            "score" => e.score, "jid" => e.jid }
        }
        """
    )
    assert bytes(entry["value"]) == GARBAGE and [bytes(a) for a in entry["args"]] == [GARBAGE]
    assert (entry["item"], entry["jid"], entry["score"]) == ({}, None, score)

    morgue = web.get("/morgue")
    assert morgue.status == 200, morgue.body
    # Its row links to "<score>-<jid>", here with no jid: Ruby finds no entry by that key
    # and sends the browser back to the morgue instead of failing.
    [link] = re.findall(r'href="(/morgue/[^"]+)"', morgue.body)
    assert link == f"/morgue/{float(score)!r}-"
    own_page = web.get(link)
    assert (own_page.status, own_page.location) == (302, f"{web.base_url}/morgue"), own_page.body
    assert web.get("/").status == 200


def test_unknown_class_waits_in_retry_for_a_worker_that_knows_it(
    r: redis.Redis, ruby, pudding_worker
) -> None:
    """During a rolling deploy a job may reach a worker without its class: it must wait
    in `retry`, as Ruby's NameError does, not be dropped or killed."""
    first = pudding_worker(queues=["py"])
    before = time.time()
    pushed = ruby('Sidekiq::Client.push("class" => "LateReportJob", "queue" => "py", '
                  '"args" => ARGS["args"])', args=["2024-Q1", {"pages": 3}])
    # Without a `retry` key (a producer other than Ruby's client): treated as `retry: true`.
    bare = {"class": "LateReportJob", "queue": "py", "args": ["bare"],
            "jid": "fedcba9876543210fedcba98", "created_at": before, "enqueued_at": before}
    r.lpush("queue:py", json.dumps(bare, separators=(",", ":")))
    wait_until(lambda: r.zcard("retry") == 2, 20, "both jobs to fail into `retry`",
               alive=[first.process])
    assert ran(r, "py:ran") == [] and r.llen("queue:py") == 0

    entries = ruby(
        """
        Sidekiq::RetrySet.new.map { |e|
          { "item" => e.item, "klass" => e.klass, "score" => e.score,
            "types" => e.item.transform_values { |v| v.class.name } }
        }
        """
    )
    by_jid = {entry["item"]["jid"]: entry for entry in entries}
    assert set(by_jid) == {pushed, bare["jid"]}
    for jid, args in ((pushed, ["2024-Q1", {"pages": 3}]), (bare["jid"], ["bare"])):
        entry = by_jid[jid]
        item = entry["item"]
        assert (entry["klass"], item["queue"], item["args"]) == ("LateReportJob", "py", args)
        assert (item["error_class"], item["error_message"], item["retry_count"]) == (
            "NameError", "uninitialized constant LateReportJob", 0,
        )
        assert item.get("retry", True) is True
        assert (entry["types"]["failed_at"], entry["types"]["retry_count"]) == (
            "Float", "Integer",
        )
        assert before <= item["failed_at"] <= time.time()
        low, high = FIRST_RETRY_DELAY
        assert low - 0.5 <= entry["score"] - item["failed_at"] <= high + 0.5

    # The first worker must not take the jobs back once they are due.
    first.process.stop()
    assert first.process.poll() == 0, first.process.log_tail()
    later = pudding_worker(queues=["py"], extra_args=["-r", "pyjobs_later"])
    # Ruby's ZINCRBY re-serialises each entry: it moves ours only if it is byte for byte
    # what Ruby's JSON.generate makes of it; otherwise it adds a second, due member, and
    # the original would still be in `retry` at the end. (Not counted here: the later
    # worker's poller may already be moving them.)
    ruby("retries = Sidekiq::RetrySet.new\n"
         "ARGS['jids'].each { |jid| retries.find_job(jid).reschedule(Time.now.to_f) }",
         jids=[pushed, bare["jid"]])
    runs = wait_until(lambda: len(ran(r, "py:ran")) == 2 and ran(r, "py:ran"), 20,
                      "the later worker to run both jobs", alive=[later.process])
    assert sorted((run["jid"], run["class"]) for run in runs) == sorted(
        [(pushed, "LateReportJob"), (bare["jid"], "LateReportJob")]
    )
    # Acked and nowhere else: neither job can run a second time.
    wait_until(lambda: in_flight(r, later) == 0, 10, "both runs to be acked",
               alive=[later.process])
    assert r.zcard("retry") == r.zcard("schedule") == r.zcard("dead") == r.llen("queue:py") == 0
    assert len(ran(r, "py:ran")) == 2
