import json
import os
import re

import pytest

from pudding.sidekiq import ids
from pudding.sidekiq.client import Client
from pudding.sidekiq.job import Job


class HardJob(Job):
    def perform(self, *args):
        pass


class CriticalJob(Job):
    sidekiq_options = {"queue": "critical", "retry": 5, "backtrace": 3}


def test_push_writes_sidekiq_json_and_registers_queue(r):
    jid = Client(r).perform_async(HardJob, 1, "two", {"three": 3})
    raw = r.lrange("queue:default", 0, -1)
    assert len(raw) == 1
    assert ":" in raw[0] and ", " not in raw[0]  # compact separators, like Ruby
    job = json.loads(raw[0])
    assert job["class"] == "HardJob"
    assert job["args"] == [1, "two", {"three": 3}]
    assert job["jid"] == jid and len(jid) == 24 and int(jid, 16) >= 0
    assert job["retry"] is True and job["queue"] == "default"
    assert isinstance(job["created_at"], float) and isinstance(job["enqueued_at"], float)
    assert job["enqueued_at"] >= job["created_at"]
    assert r.smembers("queues") == {"default"}


def test_class_options_go_into_the_payload(r):
    Client(r).perform_async(CriticalJob, 2)
    job = json.loads(r.rpop("queue:critical"))
    assert (job["queue"], job["retry"], job["backtrace"]) == ("critical", 5, 3)


def test_non_ascii_is_written_unescaped(r):
    Client(r).perform_async("HardJob", "ʕノ•ᴥ•ʔノ")
    assert "ʕノ•ᴥ•ʔノ" in r.lindex("queue:default", 0)


def test_perform_in_goes_to_schedule_without_at_or_enqueued_at(r):
    jid = Client(r).perform_in(3600, HardJob, 3)
    [(member, score)] = r.zrange("schedule", 0, -1, withscores=True)
    job = json.loads(member)
    assert job["jid"] == jid and "at" not in job and "enqueued_at" not in job
    assert score == pytest.approx(job["created_at"] + 3600, abs=1)
    assert not r.exists("queue:default")


def test_perform_at_in_the_past_runs_now(r):
    Client(r).perform_at(1000, HardJob)
    assert r.llen("queue:default") == 1 and r.zcard("schedule") == 0


def test_push_bulk_shares_timestamps_and_keeps_fifo(r):
    jids = Client(r).push_bulk({"class": "HardJob", "args": [[10], [11]]})
    jobs = [json.loads(raw) for raw in r.lrange("queue:default", 0, -1)]
    assert [job["args"] for job in jobs] == [[11], [10]]  # the tail (fetched first) is [10]
    assert {job["jid"] for job in jobs} == set(jids) and len(set(jids)) == 2
    assert jobs[0]["created_at"] == jobs[1]["created_at"]
    assert jobs[0]["enqueued_at"] == jobs[1]["enqueued_at"]


@pytest.mark.parametrize(
    "item, message",
    [
        ({"args": []}, "needs 'class'"),
        ({"class": "X", "args": "nope"}, "must be a list"),
        ({"class": "X", "args": [{1: 2}]}, "non-string key"),
        ({"class": "X", "args": [object()]}, "not a native JSON type"),
        ({"class": "X", "args": [], "at": "soon"}, "'at' must be a number"),
        ({"class": "X", "args": [], "tags": "a"}, "'tags' must be a list"),
        ({"class": "X", "args": [], "retry": "yes"}, "'retry' must be"),
    ],
)
def test_bad_jobs_are_refused_with_a_clear_error(r, item, message):
    with pytest.raises(ValueError, match=message):
        Client(r).push(item)
    assert r.dbsize() == 0


def test_ids_are_random_and_a_forked_child_does_not_repeat_its_parents():
    jids = {ids.new_jid() for _ in range(10_000)}
    assert len(jids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{24}", jid) for jid in jids)
    assert ids.new_uuid().version == 4
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, ids.new_jid().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read_end, 24).decode() != ids.new_jid()
