"""The API against hostile and broken clients: bad input is a 4xx in the JSON error shape
(never a 500 or a Sentry event), a bad Slack message ends nothing, and tokens stay out of
the log. The server's own limits (connections, slow clients, waitress's errors, Redis
restarts) are in test_connections.py."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace

import falcon.testing
import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pudding.config import SlackSettings
from pudding.slack import BackgroundNotifier, SlackNotifier
from pudding.store.cache import Cache, Instance
from pudding.web import create_app

from .conftest import AUTH, TOKEN

BUILD = {"site": "org", "env": "test", "queue": "docker", "instance_type": "c3.2xlarge",
         "count": 1}
HUGE = "9" * 5000


@pytest.fixture
def sentry_events(monkeypatch) -> list[BaseException]:
    events: list[BaseException] = []
    monkeypatch.setattr(sentry_sdk, "init", lambda **options: None)
    monkeypatch.setattr(sentry_sdk, "capture_exception", events.append)
    return events


@pytest.fixture
def reporting_client(config, sentry_events) -> falcon.testing.TestClient:
    app = create_app(replace(config, sentry_dsn="https://key@sentry.example/1"))
    return falcon.testing.TestClient(app)


def assert_json_400(result: falcon.testing.Result, says: str = "") -> None:
    assert result.status_code == 400, result.text
    [error] = result.json["errors"]
    assert says in error["details"]


def post_body(client: falcon.testing.TestClient, body: str, **kwargs) -> falcon.testing.Result:
    return client.simulate_post("/instance-builds", body=body, headers=AUTH,
                                content_type="application/json", **kwargs)


def started(client: falcon.testing.TestClient) -> str:
    result = post_body(client, json.dumps({"instance_builds": BUILD}))
    assert result.status_code == 202
    return result.json["instance_builds"][0]["id"]


def test_integers_beyond_the_digit_limit_and_deep_nesting_are_400s(reporting_client,
                                                                    sentry_events):
    client = reporting_client
    assert_json_400(post_body(client, f'{{"instance_builds": {{"count": {HUGE}}}}}'),
                    "not usable JSON")
    assert_json_400(post_body(client, "[" * 30_000 + "]" * 30_000), "nested too deeply")
    assert_json_400(post_body(client, '{"instance_builds": ' + "{\"a\": " * 5000 + "1"
                              + "}" * 5001), "nested too deeply")
    build_id = started(client)
    for body in (f'{{"state": "finished", "instance-id": {HUGE}}}', "[" * 30_000):
        result = client.simulate_patch(f"/instance-builds/{build_id}", body=body,
                                       headers=AUTH, content_type="application/json")
        assert_json_400(result)
    assert_json_400(client.simulate_get("/instance-builds", params={"limit": HUGE},
                                        headers=AUTH))
    assert sentry_events == []


def test_repeated_parameters_are_400s_naming_them(client, slack):
    build_id = started(client)
    path = f"/instance-builds/{build_id}"
    result = client.simulate_patch(
        path, query_string="state=finished&slack-channel=a&slack-channel=b", headers=AUTH)
    assert_json_400(result, 'the query parameter "slack-channel" is repeated')
    result = client.simulate_patch(path, body="state=finished&instance-id=i-1&instance-id=i-2",
                                   headers=AUTH,
                                   content_type="application/x-www-form-urlencoded")
    assert_json_400(result, 'the form parameter "instance-id" is repeated')
    assert_json_400(client.simulate_get("/instance-builds", query_string="limit=1&limit=2",
                                        headers=AUTH), '"limit" is repeated')
    assert_json_400(post_body(client, json.dumps({"instance_builds": BUILD}),
                              query_string="slack-channel=a&slack-channel=b"),
                    '"slack-channel" is repeated')
    # Nothing of the refused PATCHes happened, and the next one goes through to Slack.
    assert slack.received == []
    result = client.simulate_patch(path, params={"state": "finished",
                                                 "instance-id": "i-0123abcd"}, headers=AUTH)
    assert result.status_code == 200
    assert "`i-0123abcd`" in slack.wait_for_messages(1)[0]["text"]


@pytest.mark.parametrize("params, says", [
    ({"instance-id": "<!channel>"}, "instance-id must be an EC2 instance id"),
    ({"instance-id": "i-0123"}, "instance-id must be an EC2 instance id"),
    ({"slack-channel": "<!channel>"}, "slack_channel must be a channel"),
    ({"slack-channel": "#" + "x" * 80}, "at most 80 characters"),
])
def test_patch_checks_instance_id_and_channel(client, slack, params, says):
    build_id = started(client)
    result = client.simulate_patch(f"/instance-builds/{build_id}",
                                   params={"state": "finished", **params}, headers=AUTH)
    assert_json_400(result, says)
    assert client.simulate_get(f"/instance-builds/{build_id}",
                               headers=AUTH).json["instance_builds"][0]["state"] != "finished"
    assert slack.received == []


def test_a_termination_checks_its_channel(client, r):
    Cache(r).store_instances([Instance(id="i-0123abcd", site="org", env="prod")])
    result = client.simulate_delete("/instances/i-0123abcd", headers=AUTH,
                                    params={"slack-channel": "<!channel>"})
    assert_json_400(result, "slack_channel must be a channel")
    assert r.keys("queue:*") == []


def test_the_notifier_survives_a_message_that_raises(slack):
    notifier = BackgroundNotifier(SlackNotifier(SlackSettings(webhook_url=slack.url,
                                                              timeout=2.0)))
    notifier.notify(["#a", "#b"], "a repeated parameter, as a list")  # type: ignore[arg-type]
    notifier.notify("#ops", "the next one")
    [message] = slack.wait_for_messages(1)
    assert message == {**message, "channel": "#ops", "text": "the next one"}
    notifier.close()


# JSON text, not values: integers of any length, nesting of any depth.
_json_leaves = st.one_of(
    st.sampled_from(["null", "true", "false", "-0", "1e999"]),
    st.text(max_size=20).map(json.dumps),
    st.integers(1, 6000).map(lambda digits: "7" * digits),
)
_json = st.recursive(_json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
    st.dictionaries(st.sampled_from(["instance_builds", "count", "site", "state"]), inner,
                    max_size=3).map(
        lambda fields: "{" + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}"),
), max_leaves=30)


@given(body=st.one_of(
    _json,
    _json.map(lambda value: '{"instance_builds": ' + value + "}"),
    st.integers(1, 20_000).map(lambda depth: '{"instance_builds": ' + "[" * depth),
))
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzzed_bodies_are_4xx_json(client, body):
    for result in (post_body(client, body),
                   client.simulate_patch("/instance-builds/0d6e5f07-2d8b-4d5b-9a54-1d2f5c4e2a11",
                                         body=body, headers=AUTH,
                                         content_type="application/json")):
        assert 400 <= result.status_code < 500, (body[:200], result.text)
        assert result.json["errors"][0]["details"]


def test_a_misplaced_token_is_not_logged(start_server, redis_url):
    import urllib.error
    import urllib.request

    server = start_server(PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url)
    attempts = [
        urllib.request.Request(server.url(f"/instance-builds?token={TOKEN}")),
        urllib.request.Request(server.url(f"/?access_token={TOKEN}&limit={TOKEN}")),
        urllib.request.Request(server.url(f"/{TOKEN}")),
        urllib.request.Request(server.url("/instance-builds"),
                               headers={"Authorization": f"tokn {TOKEN}",
                                        "User-Agent": f"ci {TOKEN}",
                                        "X-Request-Id": TOKEN}),
    ]
    for request in attempts:
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=5).read()
    deadline = time.monotonic() + 10
    while server.output().count('"event": "request"') < len(attempts) + 1:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    output = server.output()
    assert TOKEN not in output
    assert "[redacted]" in output
