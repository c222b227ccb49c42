"""Fixtures for the worker tests: moto's EC2 as a server, seeded images, a Slack stand-in,
the services the jobs use, and the API and the worker as processes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest

from pudding.aws.ec2 import EC2
from pudding.config import RedisSettings, SlackSettings, WorkerSettings
from pudding.jobs.services import Services
from pudding.jobs.sources import compress
from tests.support import LoggedProcess, SlackStandIn, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "jobs-test-token-5e2a"
AUTH = {"Authorization": f"token {TOKEN}"}
REGION = "us-east-1"
STOCK_AMI = "ami-12c6146b"
INSTANCE_RSA = "-----BEGIN RSA PRIVATE KEY-----\nMIIfake\n-----END RSA PRIVATE KEY-----"

# A meta YML of the original's shape (spec 6.5), for both sites' staging and org's prod.
META_YML = """\
amqp:
  org:
    staging: {host: hostname, port: 1234, username: username, password: password,
              vhost: vhost}
    prod: {host: hostname, port: 1234, username: username, password: password, vhost: vhost,
           tls: TLSv1}
  com:
    staging: {host: com-host, port: 5671, username: u, password: p, vhost: v}
build:
  org:
    staging: {api_token: api-token, url: bulid-api-url}
    prod: {api_token: api-token, url: bulid-api-url}
  com:
    staging: {api_token: com-token, url: com-url}
librato:
  org: {email: email-address, token: token}
  com: {email: com-email, token: com-token}
cache:
  org:
    staging: &s3cache
      type: s3
      s3: {access_key_id: access-key-id, secret_access_key: secret-access-key,
           bucket: bucket}
      fetch_timeout: 1200
      push_timeout: 6600
    prod: *s3cache
  com:
    staging: *s3cache
papertrail:
  org: papertrail-syslog-upstream
  com: com-papertrail
"""

# An init-script template written for the Go original: field references only, and shell
# that Jinja2 would otherwise misread (`${#…}`, `{%`) or printf would mangle (`%s`).
GO_TEMPLATE = """\
#!/bin/bash
set -o errexit
# build {{.InstanceBuildID}}: {{.Site}}/{{.Env}} queue={{.Queue}} role={{.Role}}
# ami={{.AMI}} type={{.InstanceType}} count={{.Count}} channel={{.SlackChannel}}
ARGS=(a b c); echo "${#ARGS[@]} {%not jinja%} $(date +%s)"
export INSTANCE_ID=$(curl -s 'http://169.254.169.254/latest/meta-data/instance-id')
cat > docker_rsa <<EOF
{{.InstanceRSA}}
EOF
cat > travis-worker.yml <<EOF
{{.InstanceYML}}
EOF
echo '*.* @@{{.PapertrailSite}}' > papertrail.conf
curl -s -f -d "state=finished&instance-id=$INSTANCE_ID" -X PATCH "{{.InstanceBuildURL}}"
"""




class MotoServer:
    """moto's AWS stand-in in server mode, as a child process on a free port.

    Without its ~1300 stock images, which take seconds to load after every reset; moto
    does not check the AMI of RunInstances, so `STOCK_AMI` stands in for one.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=30, message="moto server")
        # One client for the session: making one costs a good part of a second.
        self.client = boto3.client(
            "ec2", region_name=REGION, endpoint_url=self.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("moto server exited")
        try:
            urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
        except OSError:
            return False
        return True

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A reset moto, and the env vars that point boto3 at it (here and in children)."""
    moto_server.reset()
    env = {
        "AWS_ENDPOINT_URL_EC2": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def ec2_client(moto_server: MotoServer, aws_env: dict[str, str]) -> Any:
    return moto_server.client


def create_image(ec2_client: Any, instance_id: str, name: str, tags: dict[str, str]) -> str:
    return ec2_client.create_image(
        InstanceId=instance_id,
        Name=name,
        TagSpecifications=[{
            "ResourceType": "image",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }],
    )["ImageId"]


@pytest.fixture
def images(ec2_client: Any) -> dict[str, str]:
    """This account's images: for role `worker` an old active one, the newest active one,
    a newer one tagged active=false and one without `active`; one for role `web`."""
    seed = ec2_client.run_instances(ImageId=STOCK_AMI, MinCount=1, MaxCount=1)["Instances"][0]
    made = {}
    for key, name, tags in [
        ("old", "worker-2014-01", {"role": "worker", "active": ""}),
        ("newest", "worker-2014-02", {"role": "worker", "active": "true"}),
        ("disabled", "worker-2014-03", {"role": "worker", "active": "false"}),
        ("untagged", "worker-2014-04", {"role": "worker"}),
        ("web", "web-2014-01", {"role": "web", "active": "yes"}),
    ]:
        made[key] = create_image(ec2_client, seed["InstanceId"], name, tags)
    ec2_client.terminate_instances(InstanceIds=[seed["InstanceId"]])
    return made


@pytest.fixture
def settings(redis_url: str, slack: SlackStandIn) -> WorkerSettings:
    return WorkerSettings(
        web_hostname="https://pudding.example.com",
        instance_rsa=INSTANCE_RSA,
        init_script_template=GO_TEMPLATE,
        meta_yml=META_YML,
        redis=RedisSettings(url=redis_url),
        slack=SlackSettings(webhook_url=slack.url, timeout=2.0),
        mini_worker_interval=1,
        instance_expiry=30,
        image_expiry=30,
    )


@pytest.fixture
def services(settings: WorkerSettings, ec2_client: Any) -> Services:
    return Services.create(settings, EC2(ec2_client))


def build_instances(ec2_client: Any, build_id: str) -> list[dict[str, Any]]:
    """The build's instances that are not terminated."""
    reservations = ec2_client.describe_instances(Filters=[
        {"Name": "tag:pudding:build-id", "Values": [build_id]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    return [instance for r in reservations for instance in r["Instances"]]


def build_groups(ec2_client: Any, build_id: str) -> list[dict[str, Any]]:
    return ec2_client.describe_security_groups(
        Filters=[{"Name": "tag:pudding:build-id", "Values": [build_id]}]
    )["SecurityGroups"]


def user_data(ec2_client: Any, instance_id: str) -> str:
    reply = ec2_client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(reply["UserData"]["Value"]).decode()


class Api:
    def __init__(self, process: LoggedProcess, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(
            url or f"{self.url}{path}", data=data, method=method,
            headers=AUTH if headers is None else headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self.request(method, path, body)
        assert status < 300, (status, raw)
        return json.loads(raw)


@pytest.fixture
def api(tmp_path: Path, redis_url: str, slack: SlackStandIn) -> Iterator[Api]:
    """bin/pudding-server on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "PUDDING_AUTH_TOKEN": TOKEN,
        "PUDDING_REDIS_URL": redis_url,
        "PUDDING_SLACK_WEBHOOK_URL": slack.url,
        "PUDDING_DEFAULT_SLACK_CHANNEL": "#builds",
    }
    process = LoggedProcess(
        [str(ROOT / "bin" / "pudding-server"), "--addr", f"127.0.0.1:{port}"],
        env, tmp_path / "api.log", ROOT, new_session=True,
    )
    server = Api(process, port)

    def up() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"pudding-server exited:\n{process.output()}")
        try:
            urllib.request.urlopen(f"{server.url}/", timeout=1).read()
        except OSError:
            return False
        return True

    wait_for(up, message="pudding-server")
    yield server
    process.stop()


def worker_env(
    redis_url: str, aws_env: dict[str, str], slack: SlackStandIn, web_url: str
) -> dict[str, str]:
    """Everything bin/pudding-workers needs, with every interval shortened."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUDDING_", "SIDEKIQ_"))}
    return {
        **env,
        **aws_env,
        "PUDDING_REDIS_URL": redis_url,
        "PUDDING_WEB_HOSTNAME": web_url,
        "PUDDING_SLACK_WEBHOOK_URL": slack.url,
        "INSTANCE_RSA": compress(INSTANCE_RSA),
        "INSTANCE_YML": compress(META_YML),
        "INIT_SCRIPT_TEMPLATE": compress(GO_TEMPLATE),
        "PUDDING_MINI_WORKER_INTERVAL": "1",
        "PUDDING_INSTANCE_EXPIRY": "30",
        "PUDDING_IMAGE_EXPIRY": "30",
        "SIDEKIQ_HEARTBEAT_INTERVAL": "0.5",
        "SIDEKIQ_DEAD_PROCESS_TIMEOUT": "1.5",
        "SIDEKIQ_ORPHAN_CHECK_INTERVAL": "0.5",
        "SIDEKIQ_POLL_INTERVAL_AVERAGE": "0.5",
        "SIDEKIQ_MAX_RETRIES": "1",
    }


@pytest.fixture
def start_worker(
    tmp_path: Path, redis_url: str, aws_env: dict[str, str], slack: SlackStandIn, api: Api
) -> Iterator[Callable[..., LoggedProcess]]:
    """Starts bin/pudding-workers (`-c 2`, short intervals) with extra env vars."""
    started: list[LoggedProcess] = []

    def start(*args: str, **extra_env: str) -> LoggedProcess:
        env = {**worker_env(redis_url, aws_env, slack, api.url), **extra_env}
        process = LoggedProcess(
            [str(ROOT / "bin" / "pudding-workers"), "-c", "2", "-t", "2", *args],
            env, tmp_path / f"worker-{len(started)}.log", ROOT, new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()



def without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its `user:password@`, and the basic-auth header that carries them."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    credentials = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {credentials}"}


def post_build(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"site": "org", "env": "staging", "queue": "docker", "instance_type": "c3.2xlarge",
            "count": 4, **fields}
    status, raw = api.request("POST", "/instance-builds", {"instance_builds": body})
    assert status == 202, raw
    return json.loads(raw)["instance_builds"][0]


def get_build(api: Api, build_id: str) -> dict[str, Any]:
    return api.json("GET", f"/instance-builds/{build_id}")["instance_builds"][0]


def wait_for_state(api: Api, build_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (build := get_build(api, build_id))["state"] == state and build,
        timeout=timeout, message=f"build {build_id} to be {state}",
    )


def include_url(ec2_client: Any, instance_id: str) -> str:
    data = user_data(ec2_client, instance_id)
    assert data.startswith("#include ") and data.endswith("\n"), data
    return data.removeprefix("#include ").strip()
