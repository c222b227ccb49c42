"""Acceptance 3, Quiet: a job that arrives while our processors leave their last fetch must
not be held back by the quiet process (Ruby's Processor#fetch requeues it: processor.rb:96)."""

from __future__ import annotations

import time

import pytest
import redis
from harness import WebClient, ran, wait_until
from pyjobs import EchoJob

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby


def test_quiet_all_leaves_every_unstarted_job_in_its_queue(
    r: redis.Redis, web: WebClient, pudding_worker
) -> None:
    worker = pudding_worker(queues=["py"], concurrency=2)
    client = Client(r)
    pushed: list[str] = []

    assert web.post_form("/busy", {"quiet": "1"}).status == 302  # "Quiet All"
    # A steady trickle of jobs, so that some arrive while the processors are mid-fetch
    # at the moment the TSTP lands, and for a second after.
    quiet_since: float | None = None
    deadline = time.monotonic() + 10
    while quiet_since is None or time.monotonic() < quiet_since + 1.0:
        assert time.monotonic() < deadline, "the worker never reported quiet"
        pushed.append(client.perform_async(EchoJob, len(pushed)))
        if quiet_since is None and r.hget(worker.identity, "quiet") == "true":
            quiet_since = time.monotonic()
        time.sleep(0.02)

    beat = float(r.hget(worker.identity, "beat"))
    wait_until(lambda: float(r.hget(worker.identity, "beat")) > beat + 1.4, 10,
               "three more heartbeats", alive=[worker.process])
    done = {run["jid"] for run in ran(r, "py:ran")}
    queued = {jid for jid in pushed if any(jid in raw for raw in r.lrange("queue:py", 0, -1))}
    assert queued, "every job ran: quiet did not stop the fetching"
    held = [jid for jid in pushed if jid not in done and jid not in queued]
    assert held == [], f"{len(held)} job(s) neither ran nor are in queue:py"
