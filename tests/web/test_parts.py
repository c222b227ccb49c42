"""The pieces the API is made of and the workers reuse: config, stores, templates, Slack."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid

import pytest
import structlog

from pudding.config import (
    ConfigError,
    RedisSettings,
    SlackSettings,
    WebConfig,
    default_addr,
    parse_addr,
    parse_cpus,
)
from pudding.sidekiq.config import redis_url_from_env
from pudding.slack import BackgroundNotifier, SlackNotifier, normalize_channel
from pudding.store.builds import Build, BuildStore, UnknownBuild
from pudding.store.cache import Cache, Image, Instance
from pudding.templates import (
    DEFAULT_NAME_TEMPLATE,
    NameTemplateError,
    check_name_template,
    name_context,
    render_name,
)
from pudding.web.server import OncePerInterval


def test_redis_url_resolution():
    assert redis_url_from_env({}) == "redis://localhost:6379/0"
    assert redis_url_from_env({"REDIS_URL": "redis://a/1"}) == "redis://a/1"
    env = {"REDIS_PROVIDER": "REDISGREEN_URL", "REDISGREEN_URL": "redis://g/2",
           "REDIS_URL": "redis://a/1"}
    assert redis_url_from_env(env) == "redis://g/2"
    with pytest.raises(ConfigError, match="REDIS_PROVIDER names REDISGREEN_URL, which is not set"):
        redis_url_from_env({**env, "REDISGREEN_URL": ""})


def test_listen_addresses():
    assert default_addr({}) == ":42151" and default_addr({"PORT": "5000"}) == ":5000"
    assert parse_addr(":5000") == ("0.0.0.0", 5000)
    assert parse_addr("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_addr("[::1]:80") == ("::1", 80)
    for bad in ("nope", "host:port", ":99999"):
        with pytest.raises(ConfigError):
            parse_addr(bad)


def test_cpu_lists():
    allowed = range(8)
    assert parse_cpus("", allowed) == frozenset()
    assert parse_cpus("3", allowed) == {3}
    assert parse_cpus("0,2-4, 7", allowed) == {0, 2, 3, 4, 7}
    for bad, message in [("x", "bad CPU list"), ("4-2", "runs backwards"),
                         ("1,8", "CPU 8 is not one this process may use (it may use 0, 1, 2")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_cpus(bad, allowed)


def test_config_needs_a_token():
    with pytest.raises(ConfigError, match="no auth token"):
        WebConfig(auth_token="")
    assert WebConfig(auth_token="t").redis.url == "redis://localhost:6379/0"


def test_the_web_redis_client_uses_the_urls_database(redis_server):
    client = RedisSettings(url=redis_server.url(3)).client()
    client.set("where", "three")
    assert client.connection_pool.connection_kwargs["db"] == 3
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 1.0
    client.delete("where")


def build(**changes) -> Build:
    return Build(**{"id": str(uuid.uuid4()), "site": "org", "env": "test", "queue": "docker",
                    "instance_type": "c3.4xlarge", "count": 2, **changes})


def test_each_thread_sends_its_commands_on_a_connection_of_its_own(redis_url):
    client = RedisSettings(url=redis_url).client()
    mine = client.client_id()
    others: list[int] = []
    other = threading.Thread(target=lambda: others.append(client.client_id()))
    other.start()
    other.join()
    # A pool would have handed the other thread the connection this one just used.
    assert others[0] != mine
    assert client.client_id() == mine
    with client.pipeline(transaction=True) as pipe:  # pipelines take a pool connection
        pipe.client_id()
        assert pipe.execute()[0] != mine

    read, write = os.pipe()
    if (pid := os.fork()) == 0:
        os.write(write, str(client.client_id()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert int(os.read(read, 32)) != mine  # a forked child does not share the socket
    assert client.client_id() == mine


def test_build_store_round_trip_and_worker_updates(r):
    store = BuildStore(r)
    created, new = store.create(build(ami="ami-12345678"))
    assert new and created.state == "pending" and created.created_at.endswith("Z")
    assert store.get(created.id) == created
    assert 0 < r.ttl(f"pudding:instance-build:{created.id}") <= 30 * 24 * 3600

    updated = store.update(created.id, security_group_id="sg-1")
    assert updated.security_group_id == "sg-1" and updated.state == "pending"
    started = store.transition(created.id, "started", instance_id="i-1")
    failed = store.transition(created.id, "failed", error="boom")
    assert (started.instance_id, failed.error, failed.count) == ("i-1", "boom", 2)
    assert [(h["state"], h.get("error")) for h in failed.history] == [
        ("pending", None), ("started", None), ("failed", "boom")]
    assert store.recent() == [failed]


def test_build_store_keeps_any_text_exactly(r):
    store = BuildStore(r)
    odd = '#ünï-cödé 😀 "quoted" \\ back\tslash \u2028'
    created, _ = store.create(build(slack_channel=odd, name_template=odd + " {{ id }}"))
    assert r.hget(f"pudding:instance-build:{created.id}", "slack_channel") == odd
    assert store.get(created.id) == created
    assert created.slack_channel == odd


def test_build_store_loads_its_script_again_when_redis_lost_it(r):
    store = BuildStore(r)
    r.script_flush()
    created, new = store.create(build())
    assert new and store.get(created.id) == created


def test_build_store_refuses_bad_changes(r):
    store = BuildStore(r)
    created, _ = store.create(build())
    with pytest.raises(ValueError):
        store.update(created.id, state="finished")
    with pytest.raises(ValueError):
        store.update(created.id, id="other")
    with pytest.raises(ValueError):
        store.transition(created.id, "exploded")
    missing = str(uuid.uuid4())
    with pytest.raises(UnknownBuild):
        store.transition(missing, "started")
    with pytest.raises(UnknownBuild):
        store.update(missing, error="x")
    assert not r.exists(f"pudding:instance-build:{missing}")


def test_create_is_once_per_id_and_pushes_the_job_with_it(r):
    store = BuildStore(r)
    first = build()
    job = {"class": "Pudding::InstanceBuildJob", "args": [first.id], "queue": "instance-builds"}
    stored, new = store.create(first, job)
    again, new_again = store.create(build(id=first.id, count=9), job)
    assert new and not new_again and again == stored and again.count == 2
    [raw] = r.lrange("queue:instance-builds", 0, -1)
    pushed = json.loads(raw)
    assert pushed["jid"] == stored.jid and pushed["args"] == [first.id]
    assert pushed["retry"] is True and isinstance(pushed["enqueued_at"], float)
    assert r.smembers("queues") == {"instance-builds"}


def test_cache_reads_are_reused_until_the_next_write(r):
    writer, reader = Cache(r), Cache(r)
    writer.store_instances([Instance(id="i-1"), Instance(id="i-2")])
    first = reader.instances()
    assert reader.instances() is first
    writer.remove_instance("i-1")
    assert [i.id for i in reader.instances()] == ["i-2"]
    writer.store_images([Image("ami-1", active=True)])
    assert reader.images() == (Image("ami-1", active=True),)
    r.delete("pudding:images:generation")  # e.g. the Go worker wrote: no reuse, fresh reads
    r.delete("pudding:image:ami-1")
    assert reader.images() == ()


def test_name_templates():
    fields = {"site": "org", "env": "staging", "queue": "docker", "count": 4, "role": ""}
    context = name_context(fields, "i-abcd1234")
    assert render_name(DEFAULT_NAME_TEMPLATE, context) == "travis-org-staging-docker-abcd1234"
    cases = {
        "{{ site }}-{{ Count }}-{{- .Env -}} x": "org-4-stagingx",
        "{{.Site|upper}}{{ queue | replace('o', '0') }}": "ORGd0cker",
        '{{ role | default("worker") }}/{{ instance_id_without_prefix | limit(4) }}':
            "worker/abcd",
        "{{ InstanceID }} {{/* a comment */}}{{ env | trim | lower }}": "i-abcd1234 staging",
        "{{ .InstanceIDWithoutPrefix }}{{ InstanceIDWithoutPrefix }}": "abcd1234abcd1234",
    }
    for source, name in cases.items():
        assert render_name(source, context) == name, source
    wide = "{{ site | replace('o', '" + "x" * 120 + "') }}"
    assert render_name(wide * 3, context) == (("x" * 120 + "rg") * 3)[:256]
    for bad, reason in [("{{ nope }}", "unknown name 'nope' at character 4"),
                        ("{{ .site }}", "unknown name '.site'"),
                        ("{{ 'x' }}", "unexpected \"'x'\" at character 4"),
                        ("{{ site * 300 }}", "unexpected '\\*' at character 9"),
                        ("{{ site | center(9) }}", "unknown filter 'center' at character 11"),
                        ("{{ site | limit(0) }}", "0 at character 17 is not a number from 1"),
                        ("{{ site | limit('a') }}", "limit at character 11 takes one number"),
                        ("{{ site | replace('a') }}", "replace at character 11 takes two strings"),
                        ("{{ site | replace('a', 'b',) }}", "unexpected '\\)' at character 28"),
                        ("{% for i in range(9) %}{% endfor %}", "statements are not allowed"),
                        ("{{ site", "the {{ at character 1 is not closed"),
                        ("x" * 600, "longer than 512 characters"),
                        ("{{ ami }}", "renders an empty name"),
                        (wide * 3, "longer than 256 characters")]:
        with pytest.raises(NameTemplateError, match=reason):
            check_name_template(bad, fields)


def test_slack_channel_and_configuration(slack):
    assert [normalize_channel(c) for c in ("general", "#general", "", "@bob", " ops ")] == [
        "#general", "#general", "", "@bob", "#ops"]
    assert not SlackNotifier(SlackSettings()).notify("#x", "nothing to send")
    hubot = SlackSettings(team="acme", token="t0k")
    assert hubot.endpoint() == "https://acme.slack.com/services/hooks/hubot?token=t0k"

    notifier = SlackNotifier(SlackSettings(webhook_url=slack.url, timeout=0.5))
    assert notifier.notify("general", "hello")
    assert slack.paths[0] == "/services/T0/B0/secret"
    assert slack.received[0] == {"channel": "#general",
                                 "text": "hello", "username": "travisbot",
                                 "icon_emoji": ":travis:"}
    assert notifier.notify("", "to the hook's own channel")
    assert "channel" not in slack.received[1]
    slack.status = 500
    assert not notifier.notify("#x", "refused")
    slack.status, slack.delay = 200, 2
    assert not notifier.notify("#x", "too slow")
    unreachable = SlackNotifier(SlackSettings(webhook_url="http://127.0.0.1:9/hook"))
    assert not unreachable.notify("#x", "nobody there")


def test_background_slack_sends_in_order_drops_beyond_capacity_and_drains_on_close(slack):
    slack.delay = 0.3
    background = BackgroundNotifier(
        SlackNotifier(SlackSettings(webhook_url=slack.url)), capacity=2, drain_timeout=5
    )
    with structlog.testing.capture_logs() as logs:
        for n in range(4):  # one on its way, two waiting, one too many
            background.notify("#x", f"message {n}")
            time.sleep(0.05)
        background.close()
    assert slack.texts() == ["message 0", "message 1", "message 2"]
    assert [entry["event"] for entry in logs] == [
        "slack notification dropped: too many waiting"]


def test_waitress_queue_warnings_are_sampled():
    logger = logging.getLogger("test.waitress.queue")
    logger.propagate = False
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    logger.addFilter(OncePerInterval(60))
    for depth in range(100):
        logger.warning("Task queue depth is %d", depth)
    assert seen == ["Task queue depth is 0"]
