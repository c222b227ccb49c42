"""The EC2 wrapper against moto: image choice, reusable security groups, tagged launches."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pudding.aws.ec2 import EC2, NoImage, is_active, is_transient

from .conftest import REGION, build_groups, build_instances

BUILD_ID = "0c1f5ad6-7a8f-4f1e-9a4b-2b2f6b0b8f3e"


@pytest.fixture
def ec2(ec2_client):
    return EC2(ec2_client)


def test_connect_reaches_the_endpoint_from_the_environment(aws_env, images):
    assert EC2.connect(REGION).resolve_image("", "worker").id == images["newest"]


def test_the_newest_active_image_of_the_role(ec2, images):
    assert ec2.resolve_image("", "worker").id == images["newest"]
    assert ec2.resolve_image("", "web").id == images["web"]


def test_an_explicit_ami_is_used_as_is(ec2, images):
    assert ec2.resolve_image(images["disabled"], "worker").id == images["disabled"]


def test_no_image_is_a_clear_error(ec2, images):
    with pytest.raises(NoImage, match="no active image with role 'db'"):
        ec2.resolve_image("", "db")
    with pytest.raises(NoImage, match="no such AMI: ami-0123456789abcdef0"):
        ec2.resolve_image("ami-0123456789abcdef0", "worker")


@pytest.mark.parametrize(
    ("tags", "active"),
    [({}, False), ({"active": ""}, True), ({"active": "true"}, True),
     ({"active": "False"}, False), ({"active": "0"}, False), ({"active": "no"}, False)],
)
def test_active_is_the_tag_unless_it_says_no(tags, active):
    assert is_active(tags) is active


def test_the_security_group_is_made_once_and_reused(ec2, ec2_client):
    first = ec2.ensure_security_group(f"pudding-{BUILD_ID}", BUILD_ID, "10.0.0.0/8")
    again = ec2.ensure_security_group(f"pudding-{BUILD_ID}", BUILD_ID, "10.0.0.0/8")
    assert first == again
    [group] = build_groups(ec2_client, BUILD_ID)
    assert group["GroupName"] == f"pudding-{BUILD_ID}"
    assert group["IpPermissions"] == [{
        "FromPort": 22, "ToPort": 22, "IpProtocol": "tcp",
        "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
        "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": [],
    }]
    assert ec2.build_security_groups() == [(first, BUILD_ID)]


def test_no_ssh_cidr_no_ingress(ec2, ec2_client):
    ec2.ensure_security_group(f"pudding-{BUILD_ID}", BUILD_ID, "")
    assert build_groups(ec2_client, BUILD_ID)[0]["IpPermissions"] == []


def test_launch_tags_the_instance_and_finds_it_by_build(ec2, ec2_client, images):
    assert ec2.build_instance(BUILD_ID) is None
    group = ec2.ensure_security_group(f"pudding-{BUILD_ID}", BUILD_ID, "")
    instance_id = ec2.launch(
        image_id=images["newest"], instance_type="c3.2xlarge", group_id=group,
        user_data="#include https://example.com/x\n",
        tags={"role": "worker", "pudding:build-id": BUILD_ID}, client_token=f"pudding-{BUILD_ID}",
    )
    assert ec2.build_instance(BUILD_ID) == instance_id
    [instance] = build_instances(ec2_client, BUILD_ID)
    assert instance["ImageId"] == images["newest"]
    assert instance["InstanceType"] == "c3.2xlarge"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group]
    assert group in ec2.groups_in_use()
    ec2.tag(instance_id, {"Name": "travis-x"})
    assert {"Key": "Name", "Value": "travis-x"} in ec2.instance(instance_id)["Tags"]
    ec2.terminate(instance_id)
    assert ec2.build_instance(BUILD_ID) is None
    assert group not in ec2.groups_in_use()
    assert ec2.delete_security_group(group)
    assert ec2.delete_security_group(group), "already gone counts as deleted"
    assert build_groups(ec2_client, BUILD_ID) == []


def test_an_unknown_instance_is_none(ec2):
    assert ec2.instance("i-0123456789abcdef0") is None


def test_transient_errors():
    def client_error(code, status=400):
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    assert is_transient(client_error("RequestLimitExceeded"))
    assert is_transient(client_error("Whatever", 503))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient(client_error("UnauthorizedOperation", 403))
    assert not is_transient(ValueError("x"))
