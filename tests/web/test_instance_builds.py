"""POST/GET /instance-builds, GET/PATCH /instance-builds/{id}."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from pudding.jobs.names import INSTANCE_BUILD_JOB
from pudding.store.builds import BuildStore
from pudding.store.init_scripts import InitScripts
from pudding.templates import DEFAULT_NAME_TEMPLATE

from .conftest import AUTH, needs_ruby, ruby_queue

VALID = {"site": "org", "env": "test", "queue": "docker", "instance_type": "c3.4xlarge",
         "count": 1}
JSONAPI = "application/vnd.api+json"


def post(client, fields=None, *, body=None, **kwargs):
    if body is None:
        body = json.dumps({"instance_builds": fields})
    kwargs.setdefault("headers", AUTH)
    return client.simulate_post("/instance-builds", body=body, **kwargs)


def details(result):
    assert result.headers["content-type"] == JSONAPI
    return [error["details"] for error in result.json["errors"]]


def test_create_answers_202_with_the_build_and_defaults(client, r):
    result = post(client, VALID)
    assert result.status_code == 202
    assert result.headers["content-type"] == JSONAPI
    assert result.text.endswith("}\n") and result.text.count("\n") == 1
    [build] = result.json["instance_builds"]
    assert uuid.UUID(build["id"]).version == 4 and build["id"] == build["id"].lower()
    assert {k: build[k] for k in VALID} == VALID
    assert build["state"] == "pending" and build["ami"] == ""
    assert build["role"] == "worker"
    assert "{{.Site}}" in DEFAULT_NAME_TEMPLATE
    assert build["name_template"] == DEFAULT_NAME_TEMPLATE
    assert build["slack_channel"] == "#general"
    assert [entry["state"] for entry in build["history"]] == ["pending"]
    stored = BuildStore(r).get(build["id"])
    assert stored is not None and stored.to_json() == build


@needs_ruby
@pytest.mark.ruby
def test_the_job_is_what_ruby_sidekiq_reads(client, redis_url):
    build = post(client, VALID).json["instance_builds"][0]
    [job] = ruby_queue(redis_url, "instance-builds")
    assert job == {"class": INSTANCE_BUILD_JOB, "args": [build["id"]], "jid": build["jid"],
                   "queue": "instance-builds"}


def test_the_queue_name_is_configurable(client, config, r):
    from dataclasses import replace

    import falcon.testing

    from pudding.config import QueueNames
    from pudding.web import create_app

    other = replace(config, queues=QueueNames(instance_builds="builds-2"))
    post(falcon.testing.TestClient(create_app(other)), VALID)
    assert r.llen("queue:builds-2") == 1 and r.smembers("queues") == {"builds-2"}


def test_the_original_example_gives_all_seven_errors(client, r):
    result = post(client, {})
    assert result.status_code == 400
    assert details(result) == [
        'empty "site" param',
        "site must be either org or com",
        'empty "env" param',
        "env must be prod, staging, or test",
        'empty "queue" param',
        'empty "instance_type" param',
        "count must be more than 0",
    ]
    assert r.llen("queue:instance-builds") == 0 and r.zcard("pudding:instance-builds") == 0


@pytest.mark.parametrize(("change", "message"), [
    ({"site": "net"}, "site must be either org or com"),
    ({"env": "dev"}, "env must be prod, staging, or test"),
    ({"state": "finished?"}, "state must be pending, started, or finished"),
    ({"count": 0}, "count must be more than 0"),
    ({"count": -3}, "count must be more than 0"),
    ({"count": 11}, "count must be at most 10"),
    ({"id": "../../etc"}, "id must be a UUID"),
    ({"instance_type": "huge"}, 'instance_type must look like "c3.2xlarge"'),
    ({"ami": "ami-zz"}, 'ami must look like "ami-0123abcd"'),
    ({"queue": "docker builds"}, 'queue must be 1 to 64 letters, digits, ".", "_" or "-"'),
    ({"role": "a/b"}, 'role must be 1 to 64 letters, digits, ".", "_" or "-"'),
    ({"slack_channel": "#" + "x" * 80}, "slack_channel must be at most 80 characters"),
    ({"name_template": "{{ .Nope }}"}, "name_template is invalid: unknown name '.Nope' at "
                                       "character 4"),
    ({"name_template": "{{ site "}, "name_template is invalid: the {{ at character 1 is not "
                                    "closed with }}"),
    ({"name_template": "{{ site.__class__ }}"}, "name_template is invalid: unexpected "
                                                "'.__class__' at character 8"),
    ({"name_template": "{{ ami }}"}, "name_template is invalid: renders an empty name"),
])
def test_each_validation_message(client, change, message):
    result = post(client, {**VALID, **change})
    assert (result.status_code, details(result)) == (400, [message])


@pytest.mark.parametrize(("change", "message"), [
    ({"count": "4"}, '"count" must be an integer'),
    ({"count": 4.5}, '"count" must be an integer'),
    ({"count": True}, '"count" must be an integer'),
    ({"site": 1}, '"site" must be a string'),
    ({"queue": ["docker"]}, '"queue" must be a string'),
    ({"slack_channel": "\ud800"}, '"slack_channel" must be a string'),
])
def test_type_mismatches_are_400(client, change, message):
    result = post(client, {**VALID, **change})
    assert (result.status_code, details(result)) == (400, [message])


@pytest.mark.parametrize(("body", "message"), [
    ("", "the body is empty"),
    ("   ", "the body is empty"),
    ('{"instance_builds": ', "the body is not valid JSON: Expecting value: line 1 column 21 "
                             "(char 20)"),
    ("[]", '"instance_builds" must be an object'),
    ("{}", '"instance_builds" must be an object'),
    ('{"instance_builds": null}', '"instance_builds" must be an object'),
    ('{"instance_builds": [{}]}', '"instance_builds" must be an object'),
    ("[" * 60_000, "the body is nested too deeply"),
])
def test_malformed_bodies_are_400(client, body, message):
    result = post(client, body=body)
    assert (result.status_code, details(result)) == (400, [message])


def test_non_utf8_body_is_400(client):
    result = post(client, body=b"\xff\xfe{}")
    assert (result.status_code, details(result)) == (400, ["the body is not UTF-8"])


def test_go_style_and_jinja_templates_are_accepted(client):
    for template in ("{{.Site}}-{{ .Env }}-{{.InstanceIDWithoutPrefix}}",
                     "{{ site }}-{{ queue|upper }}-{{ instance_id_without_prefix | limit(6) }}"):
        result = post(client, {**VALID, "name_template": template})
        assert result.status_code == 202, result.text
        assert result.json["instance_builds"][0]["name_template"] == template


def test_form_content_type_and_trailing_data_are_fine(client):
    body = json.dumps({"instance_builds": VALID}) + "\ntrailing garbage"
    result = post(client, body=body, headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code == 202


def test_client_fields_the_server_owns_are_ignored(client):
    result = post(client, {**VALID, "state": "finished", "instance_id": "i-1", "href": "x",
                           "unknown": 1})
    build = result.json["instance_builds"][0]
    assert result.status_code == 202
    assert (build["state"], build["instance_id"]) == ("pending", "")


def test_slack_channel_param_overrides_the_body(client):
    result = post(client, {**VALID, "slack_channel": "#a"}, params={"slack-channel": "#b"})
    assert result.json["instance_builds"][0]["slack_channel"] == "#b"
    result = post(client, {**VALID, "slack_channel": "#a"})
    assert result.json["instance_builds"][0]["slack_channel"] == "#a"


def test_a_repeated_client_id_returns_the_build_and_enqueues_nothing(client, r):
    build_id = str(uuid.uuid4())
    first = post(client, {**VALID, "id": build_id.upper()})
    assert first.status_code == 202
    assert first.json["instance_builds"][0]["id"] == build_id
    again = post(client, {**VALID, "id": build_id, "count": 3})
    assert again.status_code == 200
    assert again.json == first.json
    assert r.llen("queue:instance-builds") == 1


def test_body_over_the_limit_is_413(client, config):
    big = json.dumps({"instance_builds": {**VALID, "href": "x" * config.max_body_bytes}})
    result = post(client, body=big)
    assert result.status_code == 413
    assert details(result) == [f"the body is larger than {config.max_body_bytes} bytes"]


def test_list_newest_first_with_a_limit(client):
    ids = [post(client, VALID).json["instance_builds"][0]["id"] for _ in range(3)]
    listed = client.simulate_get("/instance-builds", headers=AUTH)
    assert [b["id"] for b in listed.json["instance_builds"]] == ids[::-1]
    limited = client.simulate_get("/instance-builds", params={"limit": "2"}, headers=AUTH)
    assert [b["id"] for b in limited.json["instance_builds"]] == ids[:0:-1]
    bad = client.simulate_get("/instance-builds", params={"limit": "0"}, headers=AUTH)
    assert bad.status_code == 400 and "limit" in details(bad)[0]


def test_show_one_build_with_its_history(client, r):
    build_id = post(client, VALID).json["instance_builds"][0]["id"]
    BuildStore(r).transition(build_id, "started", instance_id="i-0abc")
    BuildStore(r).transition(build_id, "failed", error="RunInstances: quota")
    result = client.simulate_get(f"/instance-builds/{build_id}", headers=AUTH)
    [build] = result.json["instance_builds"]
    assert (build["state"], build["instance_id"], build["error"]) == (
        "failed", "i-0abc", "RunInstances: quota")
    assert [e["state"] for e in build["history"]] == ["pending", "started", "failed"]
    assert build["history"][-1]["error"] == "RunInstances: quota"


@pytest.mark.parametrize("build_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_build_is_404(client, build_id):
    assert client.simulate_get(f"/instance-builds/{build_id}", headers=AUTH).status_code == 404
    result = client.simulate_patch(f"/instance-builds/{build_id}", headers=AUTH,
                                   params={"state": "finished"})
    assert result.status_code == 404


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()}


@pytest.fixture
def started_build(client, r):
    """A build the worker has launched: its state, init script and password are stored."""
    build_id = post(client, {**VALID, "slack_channel": "builds"}).json["instance_builds"][0]["id"]
    BuildStore(r).transition(build_id, "started", instance_id="i-0123abcd")
    InitScripts(r).store(build_id, b"#!/bin/sh\necho hi\n", "one-time-pw")
    return build_id


def test_patch_with_another_state_is_a_no_op(client, r, slack, started_build):
    for params in ({}, {"state": "started"}):
        result = client.simulate_patch(f"/instance-builds/{started_build}", params=params,
                                       headers=basic("one-time-pw"))
        assert (result.status_code, result.json) == (200, {"no": "op"})
    assert BuildStore(r).get(started_build).state == "started"
    assert r.exists(f"pudding:init-script:{started_build}", f"pudding:auth:{started_build}") == 2
    # Messages go out in order, so the first one is this PATCH's, not a no-op's.
    client.simulate_patch(f"/instance-builds/{started_build}", params={"state": "finished"},
                          headers=AUTH)
    assert slack.wait_for_messages(1)[0]["text"].startswith("Finished starting instance")
    assert len(slack.received) == 1


def test_patch_finished_records_notifies_and_wipes(client, r, slack, started_build):
    # What the init script runs: curl -X PATCH -d state=finished (a form body).
    result = client.simulate_patch(
        f"/instance-builds/{started_build}", body="state=finished",
        headers={**basic("one-time-pw"), "Content-Type": "application/x-www-form-urlencoded"})
    assert (result.status_code, result.json) == (200, {"sure": "why not"})
    build = BuildStore(r).get(started_build)
    assert build.state == "finished" and build.history[-1]["state"] == "finished"
    assert r.exists(f"pudding:init-script:{started_build}", f"pudding:auth:{started_build}") == 0
    [message] = slack.wait_for_messages(1)
    assert message["channel"] == "#builds"
    assert message["text"] == (f"Finished starting instance `i-0123abcd` "
                               f"for instance build *{started_build}*")
    # The password is gone: the instance cannot call again; a token holder can, harmlessly.
    again = client.simulate_patch(f"/instance-builds/{started_build}",
                                  params={"state": "finished"}, headers=basic("one-time-pw"))
    assert again.status_code == 403
    again = client.simulate_patch(f"/instance-builds/{started_build}",
                                  params={"state": "finished"}, headers=AUTH)
    assert again.status_code == 200
    assert len(BuildStore(r).get(started_build).history) == 3
    # Messages go out in order: had the repeat queued one, it would come before this.
    other = post(client, VALID).json["instance_builds"][0]["id"]
    client.simulate_patch(f"/instance-builds/{other}", params={"state": "finished"},
                          headers=AUTH)
    assert other in slack.wait_for_messages(2)[1]["text"]
    assert len(slack.received) == 2


def test_patch_does_not_wait_for_a_slow_slack(client, slack, started_build):
    slack.delay = 2.0
    began = time.monotonic()
    result = client.simulate_patch(f"/instance-builds/{started_build}",
                                   params={"state": "finished"}, headers=AUTH)
    assert result.status_code == 200
    assert time.monotonic() - began < 1.0
    assert started_build in slack.wait_for_messages(1)[0]["text"]


def test_patch_params_instance_id_and_channel(client, r, slack, started_build):
    result = client.simulate_patch(
        f"/instance-builds/{started_build}", headers=AUTH,
        params={"state": "finished", "instance-id": "i-0f00f00f00f00f00f", "slack-channel": "#ops"})
    assert result.status_code == 200
    assert BuildStore(r).get(started_build).instance_id == "i-0f00f00f00f00f00f"
    [message] = slack.wait_for_messages(1)
    assert message["channel"] == "#ops"
    assert "`i-0f00f00f00f00f00f`" in message["text"]


def test_patch_without_instance_id_says_wat_and_slack_failure_is_harmless(
    client, r, slack
):
    build_id = post(client, VALID).json["instance_builds"][0]["id"]
    slack.status = 500
    result = client.simulate_patch(
        f"/instance-builds/{build_id}", body='{"state": "finished"}',
        headers={**AUTH, "Content-Type": "application/json"})
    assert result.status_code == 200
    [message] = slack.wait_for_messages(1)
    assert "`?wat?`" in message["text"]
    assert message["channel"] == "#general"


def test_patch_json_must_be_an_object_of_strings(client, started_build):
    for body in ('["finished"]', '{"state": ["finished"]}', '{"state": "\\ud800"}'):
        result = client.simulate_patch(f"/instance-builds/{started_build}", body=body,
                                       headers={**AUTH, "Content-Type": "application/json"})
        assert result.status_code == 400
        assert details(result) == ["the body must be a JSON object of strings"]
