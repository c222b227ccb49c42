"""Acceptance 1, worker side: Ruby's Client feeds our worker; Ruby's API reads its state."""

from __future__ import annotations

import datetime
import json
import re
import socket
import time
from typing import Any

import pytest
import redis
from harness import ran, wait_until
from pyjobs import DoomedJob, EchoJob, SlowJob

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby


def test_ruby_enqueued_jobs_run_in_our_worker(r: redis.Redis, ruby, pudding_worker) -> None:
    worker = pudding_worker(queues=["py"])
    args = [1, "two", {"three": 3, "nested": [None, True, 2.5]}, "café 日本語 ✓"]
    pushed = ruby(
        """
        echo = { "class" => "EchoJob", "queue" => "py" }
        {
          "one" => Sidekiq::Client.push(echo.merge("args" => ARGS["args"])),
          "bulk" => Sidekiq::Client.push_bulk(echo.merge("args" => [[10], [11]])),
          "later" => Sidekiq::Client.push(echo.merge("args" => ["later"], "at" => Time.now.to_f)),
          # How a Ruby app enqueues: through its own (stub) worker class.
          "charge" => begin
            module Billing
              class ChargeJob
                include Sidekiq::Worker
                sidekiq_options queue: "py"
              end
            end
            Billing::ChargeJob.perform_async(250, "EUR")
          end,
        }
        """,
        args=args,
    )
    runs = wait_until(lambda: len(ran(r, "py:ran")) == 5 and ran(r, "py:ran"), 30,
                      "our worker to run the 5 Ruby-enqueued jobs", alive=[worker.process])
    assert {run["jid"]: (run["class"], run["args"]) for run in runs} == {
        pushed["one"]: ("EchoJob", args), pushed["bulk"][0]: ("EchoJob", [10]),
        pushed["bulk"][1]: ("EchoJob", [11]), pushed["later"]: ("EchoJob", ["later"]),
        pushed["charge"]: ("Billing::ChargeJob", [250, "EUR"]),
    }
    # "later" went to `schedule` (Ruby's client does that for any `at`): our poller moved it.
    assert r.zcard("schedule") == r.zcard("retry") == r.zcard("dead") == r.llen("queue:py") == 0


def test_ruby_api_reads_our_process_busy_job_and_stats(
    r: redis.Redis, ruby, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py", "low"], concurrency=3, tag="interop")
    client = Client(r)
    for n in range(2):
        client.perform_async(EchoJob, n)
    client.perform_async(DoomedJob)
    wait_until(lambda: r.zcard("dead") == 1 and len(ran(r, "py:ran")) == 3, 20,
               "the first 3 jobs to finish", alive=[worker.process])
    slow = client.perform_async(SlowJob, "hold", {"k": [1, 2]})
    wait_until(lambda: r.hget(worker.identity, "busy") == "1"
               and r.get("stat:processed") == "3", 20,
               "a heartbeat showing the busy job and the flushed counters", alive=[worker.process])

    seen = ruby(
        """
        ps = Sidekiq::ProcessSet.new
        stats = Sidekiq::Stats.new
        {
          "now" => Time.now.to_f,
          "size" => ps.size,
          "total_concurrency" => ps.total_concurrency,
          "processes" => ps.map { |p|
            { "identity" => p.identity, "hostname" => p["hostname"], "pid" => p["pid"],
              "tag" => p.tag, "labels" => p.labels, "concurrency" => p["concurrency"],
              "queues" => p.queues, "busy" => p["busy"], "stopping" => p.stopping?,
              "started_at" => p["started_at"], "beat" => p["beat"], "rss" => p["rss"] }
          },
          "workers" => Sidekiq::Workers.new.map { |process, tid, work|
            { "process" => process, "tid" => tid, "queue" => work["queue"],
              "run_at" => work["run_at"], "payload" => work["payload"] }
          },
          "workers_size" => Sidekiq::Workers.new.size,
          "processed" => stats.processed,
          "failed" => stats.failed,
          "stats_workers_size" => stats.workers_size,
          "processes_size" => stats.processes_size,
          "dead_size" => stats.dead_size,
          "history_processed" => Sidekiq::Stats::History.new(1).processed,
          "history_failed" => Sidekiq::Stats::History.new(1).failed,
        }
        """
    )
    assert seen["size"] == seen["processes_size"] == 1
    [process] = seen["processes"]
    assert process["identity"] == worker.identity
    assert worker.identity.startswith(f"{socket.gethostname()}:{worker.pid}:")
    assert (process["hostname"], process["pid"]) == (socket.gethostname(), worker.pid)
    assert (process["tag"], process["concurrency"], process["queues"]) == (
        "interop", 3, ["py", "low"],
    )
    assert seen["total_concurrency"] == 3
    assert process["busy"] == 1 and process["stopping"] is False
    assert process["rss"] > 1000  # KB: a Python process is megabytes
    assert process["started_at"] <= process["beat"] <= seen["now"] + 1
    assert seen["now"] - process["beat"] < 5

    [work] = seen["workers"]
    assert work["process"] == worker.identity and work["queue"] == "py" and work["tid"]
    assert isinstance(work["run_at"], int) and 0 <= seen["now"] - work["run_at"] < 30
    payload = work["payload"]
    assert (payload["jid"], payload["class"], payload["args"], payload["queue"]) == (
        slow, "SlowJob", ["hold", {"k": [1, 2]}], "py",
    )
    assert seen["workers_size"] == seen["stats_workers_size"] == 1

    assert (seen["processed"], seen["failed"], seen["dead_size"]) == (3, 1, 1)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert seen["history_processed"] == {today: 3} and seen["history_failed"] == {today: 1}

    r.rpush(f"release:{slow}", "go")
    wait_until(lambda: r.get("stat:processed") == "4" and r.hget(worker.identity, "busy") == "0",
               20, "the released job to be counted", alive=[worker.process])
    after = ruby("[Sidekiq::Workers.new.to_a.size, Sidekiq::Stats.new.processed]")
    assert after == [0, 4]


def test_our_worker_runs_ruby_perform_in_when_due(
    r: redis.Redis, ruby, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"])
    start = time.time()
    jid = ruby('EchoJob = Class.new { include Sidekiq::Worker; sidekiq_options queue: "py" }\n'
               'EchoJob.perform_in(2, "due")')
    run = wait_until(lambda: ran(r, "py:ran"), 20, "the scheduled job to run",
                     alive=[worker.process])
    assert [entry["jid"] for entry in run] == [jid]
    assert time.time() - start >= 2


def shape(value: str) -> str:
    """What a Redis hash field holds, as Ruby's readers (`to_i`, `to_f`, `== "true"`) see it."""
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if re.fullmatch(r"-?\d+\.\d+(e[-+]?\d+)?", value):
        return "float"
    if value in ("true", "false"):
        return "bool"
    return type(json.loads(value)).__name__


def json_types(value: dict[str, Any]) -> dict[str, str]:
    return {key: type(item).__name__ for key, item in value.items()}


def test_our_process_and_work_hashes_have_rubys_fields(
    r: redis.Redis, ruby, ruby_sidekiq, pudding_worker
) -> None:
    # Weighted queues: Ruby lists each queue once in `info`, whatever its weight.
    rb = ruby_sidekiq(queues=["rb,3", "low"], concurrency=2)
    py = pudding_worker(queues=["py,3", "low"], concurrency=2)
    ruby('RubySlowJob.perform_async("hold")')
    slow = Client(r).perform_async(SlowJob, "hold")
    # Ruby beats every 5 s: this waits for its first beat with the job in flight.
    wait_until(lambda: r.hget(rb.identity, "busy") == "1" and r.hget(py.identity, "busy") == "1",
               15, "both processes to report their busy job", alive=[rb.process, py.process])

    theirs, ours = r.hgetall(rb.identity), r.hgetall(py.identity)
    assert set(theirs) <= set(ours)
    assert {k: shape(v) for k, v in ours.items() if k in theirs} == {
        k: shape(v) for k, v in theirs.items()
    }
    assert ours["quiet"] == "false"
    their_info, our_info = json.loads(theirs["info"]), json.loads(ours["info"])
    assert set(their_info) <= set(our_info)
    assert {k: v for k, v in json_types(our_info).items() if k in their_info} == json_types(
        their_info
    )
    assert our_info["identity"] == py.identity and our_info["labels"] == []
    assert (their_info["queues"], our_info["queues"]) == (["rb", "low"], ["py", "low"])
    for identity in (rb.identity, py.identity):
        assert 0 < r.ttl(identity) <= 60 and 0 < r.ttl(f"{identity}:workers") <= 60

    # The 6.4.1 Web reads in-flight jobs from `<identity>:workers`: same entry shape as Ruby's.
    [their_work] = map(json.loads, r.hvals(f"{rb.identity}:workers"))
    [our_work] = map(json.loads, r.hvals(f"{py.identity}:workers"))
    assert json_types(our_work) == json_types(their_work) == {
        "queue": "str", "payload": "str", "run_at": "int",
    }
    assert json.loads(our_work["payload"])["jid"] == slow and our_work["queue"] == "py"
    # Webs from 6.4.2 on read `<identity>:work` instead; ours carries the same entries.
    assert r.hgetall(f"{py.identity}:work") == r.hgetall(f"{py.identity}:workers")
    for job in ran(r, "rb:ran") + ran(r, "py:ran"):
        r.rpush(f"release:{job['jid']}", "go")


def test_ruby_dump_threads_reaches_our_worker(r: redis.Redis, ruby, pudding_worker) -> None:
    worker = pudding_worker(queues=["py"])
    slow = Client(r).perform_async(SlowJob, "hold")
    wait_until(lambda: r.hget(worker.identity, "busy") == "1", 10, "the job to start",
               alive=[worker.process])
    ruby("Sidekiq::ProcessSet.new.each(&:dump_threads)")
    # The TTIN travels through `<identity>-signals` and the next heartbeat; the dump shows
    # the job's thread waiting in SlowJob.perform.
    wait_until(lambda: "in perform" in worker.process.output()
               and "pyjobs.py" in worker.process.output(), 10,
               "a thread dump in our log", alive=[worker.process])
    assert not r.exists(f"{worker.identity}-signals")
    r.rpush(f"release:{slow}", "go")
