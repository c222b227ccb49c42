"""Acceptance 3: Sidekiq::Web shows our busy worker and its data, and its buttons steer it."""

from __future__ import annotations

import html
import json
import re
import socket

import pytest
import redis
from harness import SidekiqProcess, WebClient, ran, wait_until
from pyjobs import DoomedJob, EchoJob, FailJob, SlowJob

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby


def wait_for_beats(r: redis.Redis, worker: SidekiqProcess, beats: int) -> None:
    """Let `beats` heartbeats of `worker` pass (at the tests' 0.5 s interval)."""
    beat = float(r.hget(worker.identity, "beat"))
    wait_until(lambda: float(r.hget(worker.identity, "beat")) >= beat + 0.5 * beats - 0.1, 10,
               f"{beats} more heartbeats", alive=[worker.process])


def follow_first(web: WebClient, listing: str, section: str) -> str:
    """Open the first job linked from a list page, as a click would; return its HTML."""
    page = web.get(listing)
    assert page.status == 200, f"GET {listing} answered {page.status}"
    link = re.search(rf'href="(/{section}/[^"/]+)"', page.body)
    assert link, f"{listing} links no job"
    detail = web.get(html.unescape(link.group(1)))
    assert detail.status == 200, f"GET {link.group(1)} answered {detail.status}"
    return detail.body


def test_web_renders_every_page_while_our_worker_is_busy(
    r: redis.Redis, web: WebClient, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"], concurrency=2, tag="interop")
    client = Client(r)
    failed = client.perform_async(FailJob, "for-the-retries-page")
    doomed = client.perform_async(DoomedJob, "for-the-morgue")
    scheduled = client.perform_in(3600, EchoJob, "for-the-schedule")
    waiting = client.push({"class": "EchoJob", "queue": "waiting", "args": ["parked"]})
    slow = client.perform_async(SlowJob, "busy-now")
    wait_until(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1
               and r.hget(worker.identity, "busy") == "1", 20,
               "a retry, a dead job and a busy heartbeat", alive=[worker.process])

    wait_until(lambda: r.get("stat:processed") == "2", 10, "the 2 failures to be counted",
               alive=[worker.process])

    for path in ("/", "/queues", "/retries", "/scheduled", "/morgue"):
        assert web.get(path).status == 200, path
    stats = web.get("/stats")  # what the dashboard's live counters poll
    assert stats.status == 200
    counters = json.loads(stats.body)["sidekiq"]
    del counters["default_latency"]
    assert counters == {
        "processed": 2, "failed": 2, "busy": 1, "processes": 1, "enqueued": 1,
        "scheduled": 1, "retries": 1, "dead": 1,
    }

    busy = web.get("/busy")
    assert busy.status == 200
    process_row = busy.body[busy.body.index('class="processes'):busy.body.index('class="workers')]
    assert f"{socket.gethostname()}:{worker.pid}" in process_row
    assert '<span class="label label-success">interop</span>' in process_row
    assert f'name="identity" value="{worker.identity}"' in process_row
    assert 'label-danger">quiet' not in process_row
    jobs_table = busy.body[busy.body.index('class="workers'):]
    assert worker.identity in jobs_table and slow in jobs_table
    assert "SlowJob" in jobs_table and "&quot;busy-now&quot;" in jobs_table
    assert 'href="/queues/py"' in jobs_table

    queue_page = web.get("/queues/waiting")
    assert queue_page.status == 200 and waiting in queue_page.body

    retry_page = follow_first(web, "/retries", "retries")
    assert failed in retry_page and "ValueError" in retry_page
    assert "boom ['for-the-retries-page']" in html.unescape(retry_page)
    assert "pyjobs.py:" in retry_page  # the backtrace, inflated by Ruby

    dead_page = follow_first(web, "/morgue", "morgue")
    assert doomed in dead_page and "RuntimeError" in dead_page and "pyjobs.py:" in dead_page

    assert scheduled in follow_first(web, "/scheduled", "scheduled")
    # Still busy: every page above was rendered with the job running.
    [work] = r.hvals(f"{worker.identity}:workers")
    assert r.hget(worker.identity, "busy") == "1" and slow in work
    r.rpush(f"release:{slow}", "go")


def test_web_quiet_and_stop_buttons_steer_our_worker(
    r: redis.Redis, web: WebClient, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"])
    assert f'value="{worker.identity}"' in web.get("/busy").body

    quiet = web.post_form("/busy", {"identity": worker.identity, "quiet": "1"})
    assert quiet.status == 302, quiet.body
    wait_until(lambda: r.hget(worker.identity, "quiet") == "true", 10,
               "our process hash to say quiet", alive=[worker.process])
    assert 'label-danger">quiet' in web.get("/busy").body

    # Quiet means no more fetching: a new job stays queued across several heartbeats.
    # (It is pushed a few beats after quiet began: test_quiet_race.py covers jobs that
    # arrive while the processors are still leaving their last fetch.)
    wait_for_beats(r, worker, 3)
    jid = Client(r).perform_async(EchoJob, "after-quiet")
    wait_for_beats(r, worker, 3)
    assert ran(r, "py:ran") == [] and r.llen("queue:py") == 1
    assert worker.identity in r.smembers("processes")

    stop = web.post_form("/busy", {"identity": worker.identity, "stop": "1"})
    assert stop.status == 302, stop.body
    assert worker.process.wait(15) == 0
    assert worker.identity not in r.smembers("processes")
    assert not r.exists(f"{worker.identity}:workers", f"{worker.identity}:work")
    assert worker.identity not in web.get("/busy").body
    assert [job for job in r.lrange("queue:py", 0, -1) if jid in job]


def entry_key(web: WebClient, listing: str, section: str, jid: str) -> str:
    """The `<score>-<jid>` key under which `listing` links the job `jid`."""
    page = web.get(listing)
    keys = re.findall(rf'href="/{section}/([^"/]+-{jid})"', page.body)
    assert keys, f"{listing} does not link {jid}"
    return html.unescape(keys[0])


def test_web_retry_kill_and_delete_buttons_act_on_our_entries(
    r: redis.Redis, web: WebClient, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"])
    client = Client(r)
    jids = {name: client.perform_async(FailJob, name) for name in ("retry", "kill", "delete")}
    wait_until(lambda: r.zcard("retry") == 3, 20, "3 failures in `retry`", alive=[worker.process])

    def runs(jid: str) -> int:
        return sum(run["jid"] == jid for run in ran(r, "py:ran"))

    # "Retry Now" on the job's own page: our worker runs it again (and it fails again).
    page = f"/retries/{entry_key(web, '/retries', 'retries', jids['retry'])}"
    assert web.post_form(page, {"retry": "Retry Now"}).status == 302
    wait_until(lambda: runs(jids["retry"]) == 2 and r.zcard("retry") == 3, 20,
               "the retried job to run and fail again", alive=[worker.process])

    # "Kill" from the list's checkboxes, then "Delete" on the dead job's page.
    key = entry_key(web, "/retries", "retries", jids["kill"])
    assert web.post_form("/retries", {"key[]": key, "kill": "Kill"}).status == 302
    assert r.zcard("dead") == 1 and jids["kill"] in r.zrange("dead", 0, -1)[0]
    page = f"/morgue/{entry_key(web, '/morgue', 'morgue', jids['kill'])}"
    assert web.post_form(page, {"delete": "Delete"}).status == 302
    assert r.zcard("dead") == 0

    page = f"/retries/{entry_key(web, '/retries', 'retries', jids['delete'])}"
    assert web.post_form(page, {"delete": "Delete"}).status == 302
    [left] = r.zrange("retry", 0, -1)
    assert jids["retry"] in left
    assert runs(jids["kill"]) == runs(jids["delete"]) == 1


def test_web_stop_lets_our_running_job_finish_first(
    r: redis.Redis, web: WebClient, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"], timeout=20)
    slow = Client(r).perform_async(SlowJob, "finish-me")
    wait_until(lambda: r.hget(worker.identity, "busy") == "1", 10, "the job to start",
               alive=[worker.process])

    assert web.post_form("/busy", {"identity": worker.identity, "stop": "1"}).status == 302
    wait_until(lambda: r.hget(worker.identity, "quiet") == "true", 10,
               "the stopping process to stop fetching", alive=[worker.process])
    assert worker.process.poll() is None  # still waiting for its job
    r.rpush(f"release:{slow}", "go")
    assert worker.process.wait(15) == 0
    assert worker.identity not in r.smembers("processes")
    assert r.get("stat:processed") == "1" and r.get("stat:failed") in (None, "0")
    assert r.llen("queue:py") == 0 and [run["jid"] for run in ran(r, "py:ran")] == [slow]
