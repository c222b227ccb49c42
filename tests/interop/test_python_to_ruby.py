"""Acceptance 1, Python side: what our Client writes, Ruby's worker runs and Ruby's API reads."""

from __future__ import annotations

import json
import time

import pytest
import redis
from harness import ran, wait_until

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby

ODD_ARGS = [1, "two", {"three": 3, "nested": [None, True, 2.5]}, "café 日本語 ✓"]


def test_python_enqueued_jobs_run_in_ruby_sidekiq(r: redis.Redis, ruby_sidekiq) -> None:
    ruby = ruby_sidekiq(queues=["rb"])
    client = Client(r)
    jid = client.push({"class": "RubyEchoJob", "queue": "rb", "args": ODD_ARGS})
    bulk = client.push_bulk({"class": "RubyEchoJob", "queue": "rb", "args": [[10], [11]]})
    # Ruby's scheduler must find it in `schedule` and enqueue it.
    later = client.push({"class": "RubyEchoJob", "queue": "rb", "args": ["later"], "at": 0.2})

    runs = wait_until(lambda: len(ran(r, "rb:ran")) == 4 and ran(r, "rb:ran"), 30,
                      "Ruby sidekiq to run the 4 Python-enqueued jobs", alive=[ruby.process])
    assert {run["jid"]: run["args"] for run in runs} == {
        jid: ODD_ARGS, bulk[0]: [10], bulk[1]: [11], later: ["later"],
    }
    assert r.llen("queue:rb") == 0 and r.zcard("schedule") == 0
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_ruby_queue_api_reads_python_jobs(r: redis.Redis, ruby) -> None:
    client = Client(r)
    first = client.push({"class": "EchoJob", "queue": "waiting", "args": [1, {"a": "b"}]})
    second = client.push(
        {"class": "Billing::ChargeJob", "queue": "waiting", "args": ["x"], "tags": ["alpha"]}
    )
    client.push({"class": "EchoJob", "queue": "other", "args": []})

    seen = ruby(
        """
        q = Sidekiq::Queue.new("waiting")
        stats = Sidekiq::Stats.new
        {
          "now" => Time.now.to_f,
          "names" => Sidekiq::Queue.all.map(&:name).sort,
          "size" => q.size,
          "latency" => q.latency,
          "jobs" => q.map { |j|
            { "klass" => j.klass, "display_class" => j.display_class, "args" => j.args,
              "jid" => j.jid, "queue" => j.queue, "tags" => j.tags,
              "created_at" => j.created_at.to_f, "enqueued_at" => j.enqueued_at.to_f }
          },
          "found" => q.find_job(ARGS["jid"])&.jid,
          "enqueued" => stats.enqueued,
          "stats_queues" => stats.queues,
        }
        """,
        jid=second,
    )
    assert seen["names"] == ["other", "waiting"]
    assert seen["size"] == 2 and seen["enqueued"] == 3
    assert seen["stats_queues"] == {"waiting": 2, "other": 1}
    # Sidekiq::Queue lists newest first: the oldest job, fetched next, comes last.
    newest, oldest = seen["jobs"]
    assert (oldest["jid"], oldest["klass"], oldest["args"]) == (first, "EchoJob", [1, {"a": "b"}])
    assert (newest["jid"], newest["display_class"], newest["tags"]) == (
        second, "Billing::ChargeJob", ["alpha"],
    )
    assert {job["queue"] for job in seen["jobs"]} == {"waiting"}
    assert seen["found"] == second
    for job in seen["jobs"]:
        assert job["created_at"] <= job["enqueued_at"] <= seen["now"]
    assert seen["latency"] == pytest.approx(seen["now"] - oldest["enqueued_at"], abs=0.05)

    # Ruby deletes by the exact string it read: proof that it reads our bytes as they are.
    ruby('Sidekiq::Queue.new("waiting").find_job(ARGS["jid"]).delete', jid=first)
    assert [job["jid"] for job in map(json.loads, r.lrange("queue:waiting", 0, -1))] == [second]


def test_ruby_scheduled_set_reads_python_jobs(r: redis.Redis, ruby) -> None:
    client = Client(r)
    before = time.time()
    in_an_hour = client.perform_in(3600, "EchoJob", "soon")
    at = before + 7200
    at_two = client.perform_at(at, "EchoJob", {"when": "later"})

    seen = ruby(
        """
        set = Sidekiq::ScheduledSet.new
        {
          "size" => set.size,
          "scheduled_size" => Sidekiq::Stats.new.scheduled_size,
          "jobs" => set.map { |e|
            { "jid" => e.jid, "at" => e.at.to_f, "klass" => e.klass, "args" => e.args,
              "queue" => e.queue, "created_at" => e.created_at.to_f }
          },
        }
        """
    )
    assert seen["size"] == seen["scheduled_size"] == 2
    later, soon = seen["jobs"]  # Ruby iterates from the highest score down
    assert (soon["jid"], soon["klass"], soon["args"], soon["queue"]) == (
        in_an_hour, "EchoJob", ["soon"], "default",
    )
    assert soon["at"] == pytest.approx(before + 3600, abs=5)
    assert (later["jid"], later["args"]) == (at_two, [{"when": "later"}])
    assert later["at"] == pytest.approx(at, abs=0.001)

    # "Add to queue", as the Web's button does it: Ruby moves our member into the queue.
    ruby("Sidekiq::ScheduledSet.new.find_job(ARGS['jid']).add_to_queue", jid=in_an_hour)
    assert r.zcard("schedule") == 1
    [moved] = map(json.loads, r.lrange("queue:default", 0, -1))
    assert moved["jid"] == in_an_hour and moved["enqueued_at"] >= before
