"""The build job in process, against moto and Redis: what it makes, and making it once."""

import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from pudding.config import SlackSettings
from pudding.jobs.builds import (
    STEPS,
    BuildStepFailed,
    InstanceBuilder,
    InstanceBuildJob,
    build_urls,
)
from pudding.slack import SlackNotifier
from pudding.store.builds import FAILED, FINISHED, PENDING, STARTED, Build
from pudding.store.init_scripts import auth_key, script_key

from .conftest import build_groups, build_instances, user_data


def new_build(services, **fields):
    build = Build(**{
        "id": str(uuid.uuid4()), "site": "org", "env": "staging", "queue": "docker",
        "instance_type": "c3.2xlarge", "count": 4, "slack_channel": "#builds", **fields,
    })
    stored, created = services.builds.create(build)
    assert created
    return stored


def test_a_build_makes_one_configured_tagged_instance(services, ec2_client, images, slack):
    build = new_build(services)
    InstanceBuilder(services).run(build.id)

    done = services.builds.get(build.id)
    assert done.state == STARTED and done.error == ""
    [instance] = build_instances(ec2_client, build.id)
    [group] = build_groups(ec2_client, build.id)
    assert done.instance_id == instance["InstanceId"]
    assert done.security_group_id == group["GroupId"] == instance["SecurityGroups"][0]["GroupId"]
    assert group["GroupName"] == f"pudding-{build.id}"
    assert instance["ImageId"] == images["newest"]
    assert instance["InstanceType"] == "c3.2xlarge"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    short = instance["InstanceId"].removeprefix("i-")
    assert tags == {
        "Name": f"travis-org-staging-docker-{short}", "role": "worker", "site": "org",
        "env": "staging", "queue": "docker", "pudding:build-id": build.id,
    }
    password = services.scripts.password(build.id)
    assert user_data(ec2_client, instance["InstanceId"]) == (
        f"#include https://x:{password}@pudding.example.com/init-scripts/{build.id}\n"
    )
    script = services.scripts.script(build.id).decode()
    assert f"ami={images['newest']} type=c3.2xlarge count=4 channel=#builds" in script
    assert f"https://x:{password}@pudding.example.com/instance-builds/{build.id}" in script
    assert "  queue: builds.docker\n" in script
    assert slack.texts() == [
        f"Started instance `{instance['InstanceId']}` for instance build *{build.id}*"
    ]
    assert slack.received[0]["channel"] == "#builds"
    assert [entry["state"] for entry in done.history] == [PENDING, STARTED]


def test_running_it_again_makes_nothing_new(services, ec2_client, images, slack):
    build = new_build(services)
    InstanceBuilder(services).run(build.id)
    InstanceBuilder(services).run(build.id)
    assert len(build_instances(ec2_client, build.id)) == 1
    assert len(build_groups(ec2_client, build.id)) == 1
    assert len(slack.received) == 1


@pytest.mark.parametrize("crashed_after", STEPS[:-1])
def test_resuming_after_any_step_finishes_the_same_build(
    services, ec2_client, images, slack, crashed_after
):
    """The in-process twin of the kill -9 test: stop after a step, run the job again."""
    build = new_build(services)

    class Crash(BaseException):
        pass

    def crash(step):
        if step == crashed_after:
            raise Crash

    with pytest.raises(Crash):
        InstanceBuilder(replace(services, checkpoint=crash)).run(build.id)
    password = services.scripts.password(build.id)
    InstanceBuilder(services).run(build.id)

    [instance] = build_instances(ec2_client, build.id)
    assert len(build_groups(ec2_client, build.id)) == 1
    done = services.builds.get(build.id)
    assert done.state == STARTED and done.instance_id == instance["InstanceId"]
    if password is not None:
        assert services.scripts.password(build.id) == password
        assert password in user_data(ec2_client, instance["InstanceId"])


def test_a_callback_before_started_is_not_undone(services, images):
    build = new_build(services)
    builder = InstanceBuilder(services)

    def finished_early(step):
        if step == "notify":
            services.builds.transition(build.id, FINISHED)

    InstanceBuilder(replace(services, checkpoint=finished_early)).run(build.id)
    assert services.builds.get(build.id).state == FINISHED
    builder.run(build.id)
    assert services.builds.get(build.id).state == FINISHED


def test_a_failing_step_records_its_error_and_raises(services, ec2_client, images):
    build = new_build(services, ami="ami-0123456789abcdef0")
    with pytest.raises(BuildStepFailed, match="image: no such AMI: ami-0123456789abcdef0"):
        InstanceBuilder(services).run(build.id)
    failed = services.builds.get(build.id)
    assert failed.state == PENDING
    assert failed.error == "image: no such AMI: ami-0123456789abcdef0"
    assert build_groups(ec2_client, build.id) == []


def test_a_missing_meta_yml_section_fails_before_launching(services, ec2_client, images):
    build = new_build(services, site="com", env="prod")
    with pytest.raises(BuildStepFailed, match='init-script: missing "env" sub-config'):
        InstanceBuilder(services).run(build.id)
    assert build_instances(ec2_client, build.id) == []


def test_after_the_last_retry_the_build_is_failed_and_slack_hears(services, slack):
    build = new_build(services)
    InstanceBuildJob(services).retries_exhausted(
        {"args": [build.id], "error_message": "x"}, BuildStepFailed("image", ValueError("boom"))
    )
    failed = services.builds.get(build.id)
    assert failed.state == FAILED and failed.error == "image: boom"
    assert failed.history[-1] == {"state": FAILED, "at": failed.history[-1]["at"],
                                  "error": "image: boom"}
    assert slack.texts() == [
        f"Failed to start an instance for instance build *{build.id}* "
        ":scream_cat: _(image: boom)_"
    ]


def test_a_failed_build_retried_by_hand_resumes(services, ec2_client, images):
    build = new_build(services)
    services.builds.transition(build.id, FAILED, error="earlier")
    InstanceBuilder(services).run(build.id)
    done = services.builds.get(build.id)
    assert done.state == STARTED and done.error == ""
    assert len(build_instances(ec2_client, build.id)) == 1


def test_an_unknown_build_is_dropped(services, ec2_client):
    InstanceBuilder(services).run(str(uuid.uuid4()))
    assert ec2_client.describe_instances()["Reservations"] == []


def test_urls_keep_a_path_prefix():
    script, callback = build_urls("https://example.com:8443/pudding/", "b1", "pw")
    assert script == "https://x:pw@example.com:8443/pudding/init-scripts/b1"
    assert callback == "https://x:pw@example.com:8443/pudding/instance-builds/b1"
    assert urlsplit(script).password == "pw"


def test_the_stored_script_expires(services, images, r):
    build = new_build(services)
    InstanceBuilder(services).run(build.id)
    ttl = services.settings.init_script_ttl
    assert 0 < r.ttl(script_key(build.id)) <= ttl
    assert 0 < r.ttl(auth_key(build.id)) <= ttl


@pytest.mark.parametrize("webhook_url", ["", "http://127.0.0.1:9/unreachable"])
def test_slack_down_or_unconfigured_never_fails_a_build(services, ec2_client, images, webhook_url):
    quiet = replace(services, slack=SlackNotifier(SlackSettings(webhook_url=webhook_url,
                                                                timeout=1.0)))
    build = new_build(quiet)
    InstanceBuilder(quiet).run(build.id)
    assert quiet.builds.get(build.id).state == STARTED
    assert len(build_instances(ec2_client, build.id)) == 1


def test_a_build_is_named_by_its_template(services, ec2_client, images):
    build = new_build(services, name_template="{{ queue | upper }}-{{ .InstanceIDWithoutPrefix }}")
    InstanceBuilder(services).run(build.id)
    [instance] = build_instances(ec2_client, build.id)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["Name"] == "DOCKER-" + instance["InstanceId"][2:]
