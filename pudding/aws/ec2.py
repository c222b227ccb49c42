"""The EC2 calls pudding makes, each safe to repeat.

Everything pudding creates carries the tag `pudding:build-id`: instances (tagged at launch,
in the same call) and security groups (one per build, named `pudding-<build id>`). So a
retried or resumed build finds what an earlier attempt made before making anything, and
terminations and clean-ups touch nothing pudding did not make.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AWSConnectionError

BUILD_TAG = "pudding:build-id"
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# AWS error codes worth a retry; anything 5xx is too.
TRANSIENT_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestTimeout",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
    "InsufficientInstanceCapacity",
})
_INACTIVE = frozenset({"false", "f", "0", "no", "off"})
# A just-launched instance can be unknown to CreateTags for a few seconds.
_TAG_ATTEMPTS = 5


class NoCredentials(RuntimeError):
    """boto3 finds no AWS credentials: no keys given, no profile, no instance role."""


class NoImage(LookupError):
    """No image to launch: the requested AMI does not exist, or no active one has the role."""


def error_code(error: BaseException) -> str:
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed (throttling, AWS trouble, network)."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in TRANSIENT_CODES or status >= 500
    return isinstance(error, AWSConnectionError | HTTPClientError)


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags") or ()}


def is_active(tags: Mapping[str, str]) -> bool:
    """Tagged `active`, with any value but an explicit no (the original took any value)."""
    return "active" in tags and tags["active"].strip().lower() not in _INACTIVE


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


@dataclass(frozen=True)
class Image:
    id: str
    name: str = ""
    role: str = ""
    active: bool = False
    state: str = ""
    created: str = ""

    @classmethod
    def from_aws(cls, image: Mapping[str, Any]) -> Image:
        tags = tags_of(image)
        return cls(
            id=image["ImageId"],
            name=image.get("Name", ""),
            role=tags.get("role", ""),
            active=is_active(tags),
            state=image.get("State", ""),
            created=image.get("CreationDate", ""),
        )


class EC2:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, region: str, access_key_id: str = "", secret_access_key: str = "") -> EC2:
        """A client for `region`; without keys, boto3's usual chain finds credentials.

        `AWS_ENDPOINT_URL_EC2` points it elsewhere (the tests' moto server).
        """
        session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
        )
        if session.get_credentials() is None:
            raise NoCredentials(
                "no AWS credentials: give a key and secret (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY), an AWS profile, or run with an instance role"
            )
        config = Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30
        )
        return cls(session.client("ec2", config=config))

    # Images

    def resolve_image(self, ami: str, role: str) -> Image:
        """`ami` itself when given, else the newest available active image for `role`."""
        if ami:
            try:
                found = self.client.describe_images(ImageIds=[ami])["Images"]
            except ClientError as error:
                if error_code(error).startswith("InvalidAMIID."):
                    raise NoImage(f"no such AMI: {ami}") from None
                raise
            if not found:
                raise NoImage(f"no such AMI: {ami}")
            image = Image.from_aws(found[0])
            if image.state != "available":
                raise NoImage(f"AMI {ami} is {image.state or 'not available'}")
            return image
        candidates = [
            image
            for image in map(Image.from_aws, self.client.describe_images(
                Owners=["self"],
                Filters=[
                    {"Name": "tag:role", "Values": [role]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )["Images"])
            if image.active
        ]
        if not candidates:
            raise NoImage(
                f"no active image with role {role!r}: tag an available image of this account "
                f"role={role} and active=true"
            )
        return max(candidates, key=lambda image: (image.created, image.name, image.id))

    def role_images(self) -> list[Image]:
        """This account's images tagged `role`."""
        images = self.client.describe_images(
            Owners=["self"], Filters=[{"Name": "tag-key", "Values": ["role"]}]
        )["Images"]
        return [Image.from_aws(image) for image in images]

    # Security groups

    def ensure_security_group(self, name: str, build_id: str, ssh_cidr: str) -> str:
        """The id of the build's group, created (and opened to `ssh_cidr` on tcp/22) if new."""
        group_id = self._group_id(name, build_id)
        if group_id is None:
            try:
                group_id = self.client.create_security_group(
                    GroupName=name,
                    Description=f"pudding instance build {build_id}",
                    TagSpecifications=[{
                        "ResourceType": "security-group",
                        "Tags": _tag_list({BUILD_TAG: build_id}),
                    }],
                )["GroupId"]
            except ClientError as error:
                # Another attempt created it since we looked.
                if error_code(error) != "InvalidGroup.Duplicate":
                    raise
                group_id = self._group_id(name, build_id)
                if group_id is None:
                    raise
        if ssh_cidr:
            try:
                self.client.authorize_security_group_ingress(
                    GroupId=group_id,
                    IpPermissions=[{
                        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": ssh_cidr}],
                    }],
                )
            except ClientError as error:
                if error_code(error) != "InvalidPermission.Duplicate":
                    raise
        return group_id

    def _group_id(self, name: str, build_id: str) -> str | None:
        groups = self.client.describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [name]},
            {"Name": f"tag:{BUILD_TAG}", "Values": [build_id]},
        ])["SecurityGroups"]
        return groups[0]["GroupId"] if groups else None

    def build_security_groups(self) -> list[tuple[str, str]]:
        """(group id, build id) of every group pudding made."""
        pages = self.client.get_paginator("describe_security_groups").paginate(
            Filters=[{"Name": "tag-key", "Values": [BUILD_TAG]}]
        )
        return [
            (group["GroupId"], tags_of(group)[BUILD_TAG])
            for page in pages
            for group in page["SecurityGroups"]
        ]

    def groups_in_use(self) -> set[str]:
        """Security groups of every instance that is not (being) terminated."""
        return {
            group["GroupId"]
            for instance in self._instances([
                {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]}
            ])
            for group in instance.get("SecurityGroups") or ()
        }

    def delete_security_group(self, group_id: str) -> bool:
        """False when EC2 still counts it as in use (a terminating instance)."""
        try:
            self.client.delete_security_group(GroupId=group_id)
        except ClientError as error:
            if error_code(error) == "InvalidGroup.NotFound":
                return True
            if error_code(error) == "DependencyViolation":
                return False
            raise
        return True

    # Instances

    def build_instance(self, build_id: str) -> str | None:
        """The id of the live instance launched for this build, if there is one."""
        instances = sorted(
            self._instances([
                {"Name": f"tag:{BUILD_TAG}", "Values": [build_id]},
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
            ]),
            key=lambda instance: (instance["LaunchTime"], instance["InstanceId"]),
        )
        return instances[0]["InstanceId"] if instances else None

    def launch(
        self,
        *,
        image_id: str,
        instance_type: str,
        group_id: str,
        user_data: str,
        tags: Mapping[str, str],
        client_token: str,
    ) -> str:
        """One instance, tagged in the same call; returns its id.

        The same `client_token` makes EC2 return the instance of an earlier call instead of
        launching another (for 24 hours or so).
        """
        reply = self.client.run_instances(
            ImageId=image_id,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            ClientToken=client_token,
            UserData=user_data,
            SecurityGroupIds=[group_id],
            TagSpecifications=[{"ResourceType": "instance", "Tags": _tag_list(tags)}],
        )
        return reply["Instances"][0]["InstanceId"]

    def tag(self, resource_id: str, tags: Mapping[str, str]) -> None:
        for attempt in range(_TAG_ATTEMPTS):
            try:
                self.client.create_tags(Resources=[resource_id], Tags=_tag_list(tags))
                return
            except ClientError as error:
                last = attempt + 1 == _TAG_ATTEMPTS
                if error_code(error) != "InvalidInstanceID.NotFound" or last:
                    raise
                time.sleep(2**attempt)

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """The instance as DescribeInstances shows it; None if EC2 does not know the id."""
        try:
            found = list(self._instances([], InstanceIds=[instance_id]))
        except ClientError as error:
            if error_code(error) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        return found[0] if found else None

    def terminate(self, instance_id: str) -> None:
        self.client.terminate_instances(InstanceIds=[instance_id])

    def running_instances(self) -> list[dict[str, Any]]:
        return list(self._instances([{"Name": "instance-state-name", "Values": ["running"]}]))

    def _instances(self, filters: list[dict[str, Any]], **params: Any) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("describe_instances").paginate(Filters=filters, **params)
        for page in pages:
            for reservation in page["Reservations"]:
                yield from reservation["Instances"]
