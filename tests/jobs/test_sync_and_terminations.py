"""The EC2 sync and the termination job, in process against moto and Redis."""

import re
import uuid

import pytest
from botocore.exceptions import ClientError

from pudding.jobs.builds import InstanceBuilder
from pudding.jobs.sync import EC2Sync
from pudding.jobs.terminations import InstanceTerminationJob
from pudding.store.builds import FINISHED, Build
from pudding.store.cache import Image, Instance

from .conftest import STOCK_AMI, build_groups


def built(services, **fields):
    build = Build(**{
        "id": str(uuid.uuid4()), "site": "org", "env": "staging", "queue": "docker",
        "instance_type": "c3.2xlarge", "count": 1, "slack_channel": "#builds", **fields,
    })
    services.builds.create(build)
    InstanceBuilder(services).run(build.id)
    return services.builds.get(build.id)


def foreign_instance(ec2_client):
    return ec2_client.run_instances(
        ImageId=STOCK_AMI, MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": "not ours"}]}],
    )["Instances"][0]["InstanceId"]


def test_the_sync_caches_running_instances_and_role_images(services, ec2_client, images):
    build = built(services)
    other = foreign_instance(ec2_client)
    EC2Sync(services).run_once()

    cached = {instance.id: instance for instance in services.cache.instances()}
    assert set(cached) == {build.instance_id, other}
    ours = cached[build.instance_id]
    described = ec2_client.describe_instances(InstanceIds=[build.instance_id])
    aws = described["Reservations"][0]["Instances"][0]
    assert ours == Instance(
        id=build.instance_id,
        name=f"travis-org-staging-docker-{build.instance_id.removeprefix('i-')}",
        instance_type="c3.2xlarge", image_id=images["newest"],
        ip=aws["PublicIpAddress"], private_ip=aws["PrivateIpAddress"],
        launch_time=ours.launch_time, queue="docker", env="staging", site="org", role="worker",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ours.launch_time)
    assert {image.image_id: image for image in services.cache.images()} == {
        images["old"]: Image(images["old"], "worker", True, "worker-2014-01", "available"),
        images["newest"]: Image(images["newest"], "worker", True, "worker-2014-02", "available"),
        images["disabled"]: Image(images["disabled"], "worker", False, "worker-2014-03",
                                  "available"),
        images["untagged"]: Image(images["untagged"], "worker", False, "worker-2014-04",
                                  "available"),
        images["web"]: Image(images["web"], "web", True, "web-2014-01", "available"),
    }


def test_the_cache_expires_as_configured(services, images, r):
    built(services)
    EC2Sync(services).run_once()
    assert 0 < r.ttl("pudding:instances") <= services.settings.instance_expiry
    assert 0 < r.ttl("pudding:images") <= services.settings.image_expiry


def test_unused_groups_go_unless_their_build_is_pending(services, ec2_client, images):
    done = built(services)
    pending = Build(id=str(uuid.uuid4()), site="org", env="staging", queue="docker",
                    instance_type="c3.2xlarge", count=1)
    services.builds.create(pending)
    services.ec2.ensure_security_group(f"pudding-{pending.id}", pending.id, "")
    orphan = str(uuid.uuid4())
    services.ec2.ensure_security_group(f"pudding-{orphan}", orphan, "")

    EC2Sync(services).run_once()
    assert len(build_groups(ec2_client, done.id)) == 1, "its instance uses it"
    assert len(build_groups(ec2_client, pending.id)) == 1, "its build is under way"
    assert build_groups(ec2_client, orphan) == [], "no build, no instance"

    ec2_client.terminate_instances(InstanceIds=[done.instance_id])
    EC2Sync(services).run_once()
    assert build_groups(ec2_client, done.id) == []


def test_one_failing_part_does_not_stop_the_others(services, images, monkeypatch):
    def broken():
        raise ClientError({"Error": {"Code": "InternalError"}}, "DescribeInstances")

    monkeypatch.setattr(services.ec2, "running_instances", broken)
    EC2Sync(services).run_once()
    assert len(services.cache.images()) == 5


def test_the_sync_thread_runs_until_stopped(services, images):
    sync = EC2Sync(services)
    sync.start()
    try:
        for _ in range(100):
            if services.cache.images():
                break
            sync._stop.wait(0.05)
        assert len(services.cache.images()) == 5
    finally:
        sync.stop()
    assert not sync._thread.is_alive()


@pytest.fixture
def terminate(services):
    return lambda *args: InstanceTerminationJob(services).perform(*args)


def test_termination_of_a_pudding_instance(services, ec2_client, images, slack, terminate):
    build = built(services)
    EC2Sync(services).run_once()
    slack.received.clear()

    terminate(build.instance_id, "ops")
    state = services.ec2.instance(build.instance_id)["State"]["Name"]
    assert state == "terminated"
    assert services.cache.instance(build.instance_id) is None
    assert slack.received == [{
        "text": f"Terminating *{build.instance_id}* :boom:", "channel": "#ops",
        "username": "travisbot", "icon_emoji": ":travis:",
    }]
    terminate(build.instance_id, "ops")
    assert len(slack.received) == 2, "terminating twice is harmless"


def test_other_instances_are_not_terminated(services, ec2_client, slack, terminate):
    other = foreign_instance(ec2_client)
    terminate(other, "#ops")
    assert services.ec2.instance(other)["State"]["Name"] == "running"
    assert slack.texts() == [
        f"Failed to terminate *{other}* :scream_cat: _(not an instance pudding launched)_"
    ]


def test_an_unknown_instance_leaves_the_cache(services, slack, terminate):
    services.cache.store_instances([Instance(id="i-0123456789abcdef0")])
    terminate("i-0123456789abcdef0", "")
    assert not services.cache.instances()
    assert slack.texts() == [
        "Failed to terminate *i-0123456789abcdef0* :scream_cat: _(no such instance)_"
    ]


def test_transient_errors_are_retried_and_others_reported(
    services, images, slack, terminate, monkeypatch
):
    build = built(services)
    slack.received.clear()

    def throttled(instance_id):
        raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}},
                          "TerminateInstances")

    monkeypatch.setattr(services.ec2, "terminate", throttled)
    with pytest.raises(ClientError):
        terminate(build.instance_id, "ops")
    assert slack.received == []

    def denied(instance_id):
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
                          "TerminateInstances")

    monkeypatch.setattr(services.ec2, "terminate", denied)
    terminate(build.instance_id, "ops")
    assert slack.texts() == [
        f"Failed to terminate *{build.instance_id}* :scream_cat: _(An error occurred "
        "(UnauthorizedOperation) when calling the TerminateInstances operation: no)_"
    ]


def test_exhausted_termination_retries_are_reported(services, slack):
    InstanceTerminationJob(services).retries_exhausted(
        {"args": ["i-1", "ops"]}, RuntimeError("still throttled")
    )
    assert slack.texts() == ["Failed to terminate *i-1* :scream_cat: _(still throttled)_"]


def test_a_finished_build_keeps_its_group_while_the_instance_lives(services, ec2_client, images):
    build = built(services)
    services.builds.transition(build.id, FINISHED)
    EC2Sync(services).run_once()
    assert len(build_groups(ec2_client, build.id)) == 1
