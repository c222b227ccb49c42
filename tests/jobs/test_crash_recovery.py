"""kill -9 after each build step in turn, then a fresh worker: still exactly one instance
and one security group for the build, and the build reaches `finished`."""

import json
import signal

import pytest

from pudding.jobs.builds import STEPS

from .conftest import (
    build_groups,
    build_instances,
    get_build,
    include_url,
    post_build,
    wait_for_state,
    without_userinfo,
)


@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_after_a_step_is_recovered_by_the_next(
    step, api, start_worker, ec2_client, images, slack
):
    doomed = start_worker(PUDDING_TEST_CRASH_AT=step)
    build = post_build(api)
    assert doomed.wait(30) == -signal.SIGKILL, doomed.output()
    assert f"killing this process after {step}\n" in doomed.output()
    assert get_build(api, build["id"])["state"] == ("started" if step == "started" else "pending")

    start_worker()
    started = wait_for_state(api, build["id"], "started")

    [instance] = build_instances(ec2_client, build["id"])
    [group] = build_groups(ec2_client, build["id"])
    assert started["instance_id"] == instance["InstanceId"]
    assert started["security_group_id"] == group["GroupId"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]]
    assert any(t["Key"] == "Name" for t in instance["Tags"])

    # The instance's user-data still opens its script, and its callback finishes the build.
    url = include_url(ec2_client, instance["InstanceId"])
    script_url, basic_auth = without_userinfo(url)
    status, script = api.request("GET", "", headers=basic_auth, url=script_url)
    assert status == 200 and build["id"].encode() in script
    callback_url = script_url.replace("/init-scripts/", "/instance-builds/")
    status, raw = api.request(
        "PATCH", "", b"state=finished",
        headers={**basic_auth, "Content-Type": "application/x-www-form-urlencoded"},
        url=callback_url,
    )
    assert (status, json.loads(raw)) == (200, {"sure": "why not"})
    assert get_build(api, build["id"])["state"] == "finished"
    assert len(build_instances(ec2_client, build["id"])) == 1
