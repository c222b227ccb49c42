"""GET /instances, GET/DELETE /instances/{id}, GET /images: the worker's cache, read back."""

from __future__ import annotations

import pytest

from pudding.jobs.names import INSTANCE_TERMINATION_JOB
from pudding.store.cache import Cache, Image, Instance

from .conftest import AUTH, needs_ruby, ruby_queue

WEB = Instance(id="i-0a", name="travis-org-staging-docker-0a", instance_type="c3.2xlarge",
               image_id="ami-00aabbcc", ip="54.1.2.3", private_ip="10.0.0.5",
               launch_time="2014-11-23T16:09:08Z", queue="docker", env="staging", site="org",
               role="worker")
COM = Instance(id="i-0b", env="prod", site="com", role="worker", queue="jvm")
OTHER = Instance(id="i-0c", env="prod", site="org", role="web", queue="docker")


@pytest.fixture
def cache(r) -> Cache:
    cache = Cache(r)
    cache.store_instances([OTHER, WEB, COM])
    cache.store_images([
        Image("ami-1", role="worker", active=True, name="worker-2024", state="available"),
        Image("ami-2", role="worker", active=False, name="worker-2023"),
        Image("ami-3", role="web", active=True),
    ])
    return cache


def get(client, path, **params):
    result = client.simulate_get(path, params=params, headers=AUTH)
    assert result.headers["content-type"] == "application/vnd.api+json"
    return result


def test_instances_in_the_original_shape(client, cache):
    result = get(client, "/instances")
    assert result.status_code == 200
    first = result.json["instances"][0]
    assert list(first) == ["name", "id", "instance_type", "image_id", "ip", "private_ip",
                           "launch_time", "queue", "env", "site", "role"]
    assert first == {"name": "travis-org-staging-docker-0a", "id": "i-0a",
                     "instance_type": "c3.2xlarge", "image_id": "ami-00aabbcc",
                     "ip": "54.1.2.3", "private_ip": "10.0.0.5",
                     "launch_time": "2014-11-23T16:09:08Z", "queue": "docker",
                     "env": "staging", "site": "org", "role": "worker"}
    assert [i["id"] for i in result.json["instances"]] == ["i-0a", "i-0b", "i-0c"]


@pytest.mark.parametrize(("params", "ids"), [
    ({"env": "prod"}, ["i-0b", "i-0c"]),
    ({"site": "org"}, ["i-0a", "i-0c"]),
    ({"role": "web"}, ["i-0c"]),
    ({"queue": "docker"}, ["i-0a", "i-0c"]),
    ({"env": "prod", "site": "org"}, ["i-0c"]),
    ({"env": "", "other": "x"}, ["i-0a", "i-0b", "i-0c"]),
    ({"env": "nope"}, []),
])
def test_instance_filters(client, cache, params, ids):
    assert [i["id"] for i in get(client, "/instances", **params).json["instances"]] == ids


def test_expired_hashes_are_skipped(client, cache, r):
    r.delete("pudding:instance:i-0b")
    assert [i["id"] for i in get(client, "/instances").json["instances"]] == ["i-0a", "i-0c"]
    assert get(client, "/instances/i-0b").status_code == 404


def test_one_instance(client, cache):
    result = get(client, "/instances/i-0a")
    assert result.json == {"instances": [WEB.to_json()]}
    missing = get(client, "/instances/i-nope")
    assert missing.status_code == 404
    assert missing.json == {"errors": [{"details": "no such instance: i-nope"}]}


def test_the_cache_writer_replaces_stale_fields(cache, r):
    cache.store_instances([Instance(id="i-0a", name="renamed")])
    assert r.smembers("pudding:instances") == {"i-0a"}
    assert r.hgetall("pudding:instance:i-0a")["role"] == ""
    assert 0 < r.ttl("pudding:instance:i-0a") <= 90 and 0 < r.ttl("pudding:instances") <= 90


@needs_ruby
@pytest.mark.ruby
def test_delete_enqueues_a_termination_ruby_can_read(client, cache, redis_url):
    result = client.simulate_delete("/instances/i-0a", params={"slack-channel": "#ops"},
                                    headers=AUTH)
    assert (result.status_code, result.json) == (202, {"ok": "working on that"})
    [job] = ruby_queue(redis_url, "instance-terminations")
    assert (job["class"], job["args"]) == (INSTANCE_TERMINATION_JOB, ["i-0a", "#ops"])
    assert len(job["jid"]) == 24


def test_delete_uses_the_default_channel_and_refuses_unknown_instances(client, cache, r):
    import json

    assert client.simulate_delete("/instances/i-0b", headers=AUTH).status_code == 202
    job = json.loads(r.lindex("queue:instance-terminations", 0))
    assert job["args"] == ["i-0b", "#general"] and job["retry"] is True
    missing = client.simulate_delete("/instances/i-nope", headers=AUTH)
    assert missing.status_code == 404
    assert r.llen("queue:instance-terminations") == 1


def test_images(client, cache):
    result = get(client, "/images")
    assert result.json["images"][0] == {"image_id": "ami-1", "role": "worker", "active": True,
                                        "name": "worker-2024", "state": "available"}
    assert [i["image_id"] for i in result.json["images"]] == ["ami-1", "ami-2", "ami-3"]


@pytest.mark.parametrize(("params", "ids"), [
    ({"active": "true"}, ["ami-1", "ami-3"]),
    ({"active": "false"}, ["ami-2"]),
    ({"active": "no"}, ["ami-2"]),
    ({"role": "worker"}, ["ami-1", "ami-2"]),
    ({"active": "true", "role": "worker"}, ["ami-1"]),
])
def test_image_filters(client, cache, params, ids):
    assert [i["image_id"] for i in get(client, "/images", **params).json["images"]] == ids
