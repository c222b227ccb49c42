"""Acceptance 3, client side: Sidekiq::Web renders what our Client writes."""

from __future__ import annotations

import html
import re

import pytest
import redis
from harness import WebClient

from pudding.sidekiq.client import Client

pytestmark = pytest.mark.ruby


def test_web_renders_python_enqueued_and_scheduled_jobs(r: redis.Redis, web: WebClient) -> None:
    client = Client(r)
    queued = client.push({"class": "EchoJob", "queue": "waiting", "args": [7, "seven"]})
    scheduled = client.perform_in(3600, "Billing::ChargeJob", {"cents": 250})

    home = web.get("/")
    assert home.status == 200
    queues = web.get("/queues")
    assert queues.status == 200 and 'href="/queues/waiting"' in queues.body

    queue_page = web.get("/queues/waiting")
    assert queue_page.status == 200
    assert queued in queue_page.body and "EchoJob" in queue_page.body
    assert "7, &quot;seven&quot;" in queue_page.body

    listing = web.get("/scheduled")
    assert listing.status == 200 and "Billing::ChargeJob" in listing.body
    link = re.search(r'href="(/scheduled/[^"]+)"', listing.body)
    assert link, "the scheduled list links no job"
    detail = web.get(html.unescape(link.group(1)))
    assert detail.status == 200
    assert scheduled in detail.body and "cents" in detail.body
