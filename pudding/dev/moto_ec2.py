"""A local EC2: moto in server mode, seeded with an active image for each role."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "pudding-dev", "aws_secret_access_key": "pudding-dev"}
# moto launches from any AMI id; this one only seeds the instance the images are made of.
SEED_AMI = "ami-12c6146b"


def argv(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def env(base: Mapping[str, str]) -> dict[str, str]:
    # Without moto's ~1300 stock images: they take seconds to load and only hide ours.
    return {**base, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def client(url: str) -> Any:
    return boto3.client("ec2", region_name=REGION, endpoint_url=url, **CREDENTIALS)


def seed_images(url: str, roles: Iterable[str]) -> dict[str, str]:
    """One active image per role (tags `role` and `active=true`); role → image id."""
    ec2 = client(url)
    seed = ec2.run_instances(ImageId=SEED_AMI, MinCount=1, MaxCount=1)["Instances"][0]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    images = {}
    for role in roles:
        images[role] = ec2.create_image(
            InstanceId=seed["InstanceId"],
            Name=f"pudding-demo-{role}-{stamp}",
            TagSpecifications=[{
                "ResourceType": "image",
                "Tags": [{"Key": "role", "Value": role}, {"Key": "active", "Value": "true"}],
            }],
        )["ImageId"]
    ec2.terminate_instances(InstanceIds=[seed["InstanceId"]])
    return images
