"""A build stored with a name template that no longer parses (the API took Jinja before) still
starts: its instance gets the default name, and the worker says why in a warning."""

import uuid

import structlog

from pudding.jobs.builds import InstanceBuilder
from pudding.store.builds import STARTED, Build

from .conftest import build_instances

JINJA_LOOP = "{% for i in range(3) %}{{ site }}{% endfor %}"


def test_an_unparsable_stored_template_gives_the_default_name_and_a_warning(
    services, ec2_client, images
):
    build = Build(id=str(uuid.uuid4()), site="com", env="staging", queue="ruby",
                  instance_type="c3.2xlarge", count=1, name_template=JINJA_LOOP)
    services.builds.create(build)
    with structlog.testing.capture_logs() as logs:
        InstanceBuilder(services).run(build.id)

    done = services.builds.get(build.id)
    assert (done.state, done.error, done.name_template) == (STARTED, "", JINJA_LOOP)
    [instance] = build_instances(ec2_client, build.id)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["Name"] == "travis-com-staging-ruby-" + instance["InstanceId"].removeprefix("i-")
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["build_id"] == build.id
    assert warning["error"] == (
        "{% %} statements are not allowed in a name template (character 1)"
    )
