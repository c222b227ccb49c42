"""The API and the worker as processes, moto as EC2, a stand-in for Slack: a build from
POST to the instance's callback, the inventory, a termination, and a build that fails."""

import json
import os
import subprocess
import time

from pudding.jobs.init_script import InitScriptTemplate
from pudding.jobs.instance_yml import MetaYML
from tests.support import wait_for

from .conftest import (
    GO_TEMPLATE,
    INSTANCE_RSA,
    META_YML,
    build_groups,
    build_instances,
    get_build,
    include_url,
    post_build,
    wait_for_state,
    without_userinfo,
)


def test_a_build_from_request_to_finished(api, start_worker, ec2_client, images, slack):
    build = post_build(api, slack_channel="team-builds")
    assert build["state"] == "pending"
    assert get_build(api, build["id"])["state"] == "pending", "no worker yet"

    worker = start_worker()
    started = wait_for_state(api, build["id"], "started")
    assert worker.process.poll() is None, worker.output()

    [instance] = build_instances(ec2_client, build["id"])
    [group] = build_groups(ec2_client, build["id"])
    instance_id = instance["InstanceId"]
    assert started["instance_id"] == instance_id
    assert started["security_group_id"] == group["GroupId"]
    assert instance["ImageId"] == images["newest"]
    assert instance["InstanceType"] == "c3.2xlarge"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]]
    assert {t["Key"]: t["Value"] for t in instance["Tags"]} == {
        "Name": f"travis-org-staging-docker-{instance_id.removeprefix('i-')}",
        "role": "worker", "site": "org", "env": "staging", "queue": "docker",
        "pudding:build-id": build["id"],
    }

    url = include_url(ec2_client, instance_id)
    script_url, basic_auth = without_userinfo(url)
    assert script_url == f"{api.url}/init-scripts/{build['id']}"
    status, script = api.request("GET", "", headers=basic_auth, url=script_url)
    assert status == 200
    callback = f"{url.rpartition('/init-scripts/')[0]}/instance-builds/{build['id']}"
    assert script.decode() == InitScriptTemplate(GO_TEMPLATE).render({
        "env": "staging", "site": "org", "queue": "docker", "role": "worker",
        "ami": images["newest"], "instance_type": "c3.2xlarge", "instance_rsa": INSTANCE_RSA,
        "slack_channel": "team-builds", "papertrail_site": "papertrail-syslog-upstream",
        "instance_yml": MetaYML(META_YML).instance_yml("org", "staging", "docker", 4),
        "instance_build_id": build["id"], "instance_build_url": callback,
        "init_script_url": url, "count": 4,
    }).decode()
    assert f'-X PATCH "{callback}"' in script.decode()
    assert slack.texts() == [f"Started instance `{instance_id}` for instance build *{build['id']}*"]
    assert slack.received[0]["channel"] == "#team-builds"

    # What the script's last line does.
    callback_url, _ = without_userinfo(callback)
    status, raw = api.request(
        "PATCH", "", f"state=finished&instance-id={instance_id}".encode(),
        headers={**basic_auth, "Content-Type": "application/x-www-form-urlencoded"},
        url=callback_url,
    )
    assert (status, json.loads(raw)) == (200, {"sure": "why not"})
    wait_for(lambda: len(slack.received) == 2, message="the finished message")
    assert slack.texts()[1] == (
        f"Finished starting instance `{instance_id}` for instance build *{build['id']}*"
    )
    assert api.request("GET", f"/init-scripts/{build['id']}")[0] == 404
    assert api.request("GET", "", headers=basic_auth, url=script_url)[0] == 403, (
        "the one-time password is gone too"
    )

    finished = get_build(api, build["id"])
    assert finished["state"] == "finished"
    assert [entry["state"] for entry in finished["history"]] == ["pending", "started", "finished"]


def test_inventory_and_termination(api, start_worker, ec2_client, images, slack):
    build = post_build(api, queue="ruby")
    start_worker()
    instance_id = wait_for_state(api, build["id"], "started")["instance_id"]

    listed = wait_for(
        lambda: api.json("GET", "/instances")["instances"], message="the synced instances"
    )
    assert listed == [{
        "name": f"travis-org-staging-ruby-{instance_id.removeprefix('i-')}",
        "id": instance_id, "instance_type": "c3.2xlarge", "image_id": images["newest"],
        "ip": listed[0]["ip"], "private_ip": listed[0]["private_ip"],
        "launch_time": listed[0]["launch_time"],
        "queue": "ruby", "env": "staging", "site": "org", "role": "worker",
    }]
    assert listed[0]["ip"] and listed[0]["private_ip"]
    assert api.json("GET", "/instances?queue=ruby&env=staging&site=org&role=worker")[
        "instances"] == listed
    assert api.json("GET", "/instances?env=prod")["instances"] == []
    assert api.json("GET", f"/instances/{instance_id}")["instances"] == listed

    active = api.json("GET", "/images?active=true&role=worker")["images"]
    assert sorted(image["image_id"] for image in active) == sorted(
        [images["old"], images["newest"]]
    )
    assert {"image_id": images["newest"], "role": "worker", "active": True,
            "name": "worker-2014-02", "state": "available"} in active
    inactive = api.json("GET", "/images?active=false")["images"]
    assert sorted(image["image_id"] for image in inactive) == sorted(
        [images["disabled"], images["untagged"]]
    )

    status, raw = api.request("DELETE", f"/instances/{instance_id}?slack-channel=ops")
    assert (status, json.loads(raw)) == (202, {"ok": "working on that"})
    wait_for(lambda: build_instances(ec2_client, build["id"]) == [], message="termination")
    wait_for(lambda: api.request("GET", f"/instances/{instance_id}")[0] == 404,
             message="the instance to leave the cache")
    wait_for(lambda: f"Terminating *{instance_id}* :boom:" in slack.texts(),
             message="the termination message")
    assert slack.received[-1]["channel"] == "#ops"
    wait_for(lambda: build_groups(ec2_client, build["id"]) == [],
             message="the next sync to delete the security group")


def test_a_build_that_cannot_succeed(api, start_worker, ec2_client, images, slack, r):
    build = post_build(api, ami="ami-0123456789abcdef0")
    started = time.monotonic()
    start_worker()
    message = "image: no such AMI: ami-0123456789abcdef0"
    first = wait_for(lambda: (b := get_build(api, build["id"]))["error"] and b,
                     message="the first failure")
    assert first["state"] == "pending" and first["error"] == message
    wait_for(lambda: r.zcard("retry") == 1, message="the retry")

    failed = wait_for_state(api, build["id"], "failed", timeout=60)
    assert failed["error"] == message
    assert failed["history"][-1]["error"] == message
    # The build is failed by the job's last rites, just before the job enters the dead set.
    wait_for(lambda: r.zcard("dead") == 1, message="the job in the dead set")
    [dead] = [json.loads(raw) for raw in r.zrange("dead", 0, -1)]
    assert (dead["class"], dead["args"], dead["retry_count"]) == (
        "Pudding::InstanceBuildJob", [build["id"]], 1
    )
    assert dead["error_message"] == message
    wait_for(lambda: slack.received, message="the failure message")
    assert slack.texts() == [
        f"Failed to start an instance for instance build *{build['id']}* "
        f":scream_cat: _({message})_"
    ]
    assert build_groups(ec2_client, build["id"]) == []
    assert ec2_client.describe_instances(
        Filters=[{"Name": "tag-key", "Values": ["pudding:build-id"]}]
    )["Reservations"] == []
    assert time.monotonic() - started < 60


RUBY_PUSH = (
    'require "sidekiq"; '
    'puts Sidekiq::Client.push("class" => "Pudding::InstanceTerminationJob", '
    '"queue" => "instance-terminations", "args" => [ARGV[0], "ops"])'
)


def test_a_job_enqueued_by_ruby_runs_in_pudding_workers(
    start_worker, ec2_client, images, slack, redis_url
):
    [instance] = ec2_client.run_instances(
        ImageId=images["newest"], MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "pudding:build-id", "Value": "from-ruby"}]}],
    )["Instances"]
    start_worker()
    pushed = subprocess.run(
        ["ruby", "-e", RUBY_PUSH, instance["InstanceId"]],
        env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr
    assert len(pushed.stdout.strip()) == 24  # Ruby's jid
    wait_for(lambda: build_instances(ec2_client, "from-ruby") == [],
             message="Ruby's termination job to run in pudding-workers")
    wait_for(lambda: f"Terminating *{instance['InstanceId']}* :boom:" in slack.texts(),
             message="the Slack message")
