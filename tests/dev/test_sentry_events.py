"""Sentry, end to end: the API's 500 and a failing job each send one event to a stand-in
Sentry, and neither carries the token, a password or the instance RSA key."""

from __future__ import annotations

import base64
import json
import time

from tests.support import wait_for

from .conftest import BIN, INSTANCE_RSA, TOKEN, start_api, worker_env


def base64_forms(secret: str) -> list[str]:
    """What `secret` looks like inside any base64 text, at each of the 3 alignments."""
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + secret.encode()).decode()
        forms.append(encoded[(pad * 4 + 2) // 3 + 1:-4])
    return forms


def assert_no_secrets(raw: bytes, *secrets: str) -> None:
    text = raw.decode()
    for secret in secrets:
        for form in (secret, *base64_forms(secret)):
            assert form not in text, f"{secret[:12]}… reached Sentry (as {form[:12]}…)"
    for line in INSTANCE_RSA.splitlines():
        assert line not in text, "the RSA key reached Sentry"


def test_kaboom_is_one_event_without_the_token(start, redis_url, sentry):
    api = start_api(start, redis_url, PUDDING_SENTRY_DSN=sentry.dsn)
    status, body = api.request("POST", "/kaboom?token=" + TOKEN, headers={
        "Authorization": f"token {TOKEN}", "Cookie": "session=s3cr3t-cookie",
    })
    assert status == 500
    request_id = json.loads(body)["errors"][0]["details"].split("request ")[1].rstrip(")")

    [event] = wait_for(sentry.events, 10, "the kaboom event")
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["component"] == "web"
    time.sleep(1)
    assert len(sentry.events()) == 1, "one event, not one per integration"
    assert_no_secrets(b"".join(sentry.bodies), TOKEN, "s3cr3t-cookie")
    assert request_id in api.proc.output(), "the log line carries the id the client saw"


def test_a_failing_job_is_one_event_without_passwords(start, redis_url, r, moto, sentry):
    api = start_api(start, redis_url)
    env = {
        **worker_env(redis_url, moto, api.url),
        "PUDDING_SENTRY_DSN": sentry.dsn,
        "SIDEKIQ_MAX_RETRIES": "0",
    }
    worker = start("worker", [str(BIN / "pudding-workers"), "-c", "1", "-t", "2"], env)
    # moto refuses the unknown instance type at launch: after the init script and its
    # one-time password were made.
    status, body = api.request("POST", "/instance-builds", {"instance_builds": {
        "site": "org", "env": "test", "queue": "docker", "instance_type": "zz9.huge",
        "count": 1,
    }})
    assert status == 202, body
    build_id = json.loads(body)["instance_builds"][0]["id"]

    [event] = wait_for(sentry.events, 30, f"the job's event; worker log:\n{worker.output()}")
    assert event["tags"]["component"] == "worker"
    assert event["tags"]["job_class"] == "Pudding::InstanceBuildJob"
    assert event["contexts"]["job"]["args"] == [build_id]
    assert "launch:" in event["exception"]["values"][-1]["value"]
    wait_for(lambda: r.zcard("dead") == 1, 10, "the job in the dead set")
    time.sleep(1)
    assert len(sentry.events()) == 1

    password = r.get(f"pudding:auth:{build_id}")
    assert password, "the build got as far as its one-time password"
    assert_no_secrets(b"".join(sentry.bodies), password, TOKEN,
                      env["AWS_SECRET_ACCESS_KEY"])
