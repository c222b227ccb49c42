"""What `pudding dev` runs: Redis, a local EC2 (moto), the API, the workers and the
dashboard, started under a Supervisor, and the banner that says where they are.

Nothing here can reach real AWS: the children get moto's endpoint and made-up keys, and
none of the caller's AWS, Redis, Sentry or pudding settings.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from pudding.dev import demo, moto_ec2
from pudding.dev.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "bin" / "pudding-sidekiq-web"
# The caller's settings that must not reach the children.
_DROPPED_PREFIXES = ("PUDDING_", "SIDEKIQ_", "AWS_", "REDIS_", "SENTRY_", "INSTANCE_",
                     "INIT_SCRIPT_", "MOTO_")
_DROPPED = ("QUEUES", "PORT", "DYNO", "DEBUG")


@dataclass(frozen=True)
class Stack:
    redis_url: str
    ec2_url: str
    api_url: str
    token: str
    dashboard_url: str
    images: Mapping[str, str]
    workdir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_port(wanted: int) -> int:
    """`wanted` if it is free on loopback, else any free port (0: any)."""
    if wanted:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", wanted))
                return wanted
            except OSError:
                pass
    return free_port()


def clean_env() -> dict[str, str]:
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith(_DROPPED_PREFIXES) and name not in _DROPPED
    }


def dashboard_available() -> bool:
    """Ruby Sidekiq's dashboard can run here (ruby-sidekiq and rackup are installed)."""
    if not (shutil.which("rackup") and shutil.which("ruby") and DASHBOARD.exists()):
        return False
    check = subprocess.run(["ruby", "-e", 'require "sidekiq/web"'], capture_output=True,
                           timeout=30)
    return check.returncode == 0


def _answers(url: str, expect: bytes = b"") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200 and expect in response.read()
    except OSError:
        return False


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _worker_registered(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=1) as client:
        return bool(client.scard("processes"))


def start_stack(
    supervisor: Supervisor,
    workdir: Path,
    api_port: int,
    dashboard_port: int | None,
    roles: tuple[str, ...],
    sync_interval: float,
    fakeredis: bool = False,
) -> Stack:
    base = clean_env()

    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    binary = None if fakeredis else shutil.which("redis-server")
    if binary:
        supervisor.start("redis", [
            binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "no", "--loglevel", "warning",
        ], base)
    else:
        if not fakeredis:
            supervisor.say("redis-server is not installed: using fakeredis instead")
        supervisor.start("redis", [sys.executable, "-m", "pudding.dev.fake_redis", "--port",
                                   str(redis_port)], base)

    ec2_port = free_port()
    ec2_url = f"http://127.0.0.1:{ec2_port}"
    supervisor.start("ec2", moto_ec2.argv(ec2_port), moto_ec2.env(base), quiet=True)

    supervisor.wait_until(lambda: _redis_answers(redis_url), "Redis")
    supervisor.wait_until(lambda: moto_ec2.answers(ec2_url), "moto's EC2", timeout=90)
    images = moto_ec2.seed_images(ec2_url, roles)

    token = secrets.token_hex(24)
    api_url = f"http://127.0.0.1:{api_port}"
    supervisor.start("api", [sys.executable, "-m", "pudding.web", "--addr",
                             f"127.0.0.1:{api_port}"], {
        **base, "PUDDING_AUTH_TOKEN": token, "PUDDING_REDIS_URL": redis_url,
    })

    files = demo.write_files(workdir)
    supervisor.start("worker", [
        # fakeredis serves every client from one Python process: fewer fetching threads
        # leave it time for the API, whose Redis calls give up after 1 s.
        sys.executable, "-m", "pudding.jobs", "-c", "2" if fakeredis else "5", "-t", "5",
        *(part for flag, path in files.items() for part in (flag, str(path))),
    ], {
        **base,
        "PUDDING_REDIS_URL": redis_url,
        "PUDDING_WEB_HOSTNAME": api_url,
        "PUDDING_MINI_WORKER_INTERVAL": str(sync_interval),
        "AWS_ENDPOINT_URL_EC2": ec2_url,
        "AWS_DEFAULT_REGION": moto_ec2.REGION,
        "AWS_ACCESS_KEY_ID": moto_ec2.CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": moto_ec2.CREDENTIALS["aws_secret_access_key"],
        "AWS_EC2_METADATA_DISABLED": "true",
    })

    dashboard_url = ""
    if dashboard_port is not None:
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        supervisor.start("dashboard", [str(DASHBOARD), "-o", "127.0.0.1", "-p",
                                       str(dashboard_port)], {
            **base, "PUDDING_REDIS_URL": redis_url,
        })

    supervisor.wait_until(lambda: _answers(f"{api_url}/", b"ohai"), "the API")
    supervisor.wait_until(lambda: _worker_registered(redis_url), "the worker")
    if dashboard_url:
        supervisor.wait_until(lambda: _answers(f"{dashboard_url}/stats"), "the dashboard")
    return Stack(redis_url, ec2_url, api_url, token, dashboard_url, images, workdir)


def banner(stack: Stack) -> str:
    images = ", ".join(f"{role} {ami}" for role, ami in stack.images.items())
    lines = [
        "",
        "pudding is running; Ctrl-C stops everything.",
        "",
        f"  API        {stack.api_url}",
        f"  token      {stack.token}",
        f"  dashboard  {stack.dashboard_url or 'not running (install ruby-sidekiq for it)'}",
        f"  EC2        {stack.ec2_url} (moto; images: {images})",
        f"  Redis      {stack.redis_url}",
        f"  demo init-script template, meta YML and key in {stack.workdir}",
        "",
        "In another terminal:",
        "",
        f"  export PUDDING_URL={stack.api_url} PUDDING_AUTH_TOKEN={stack.token}",
        "  bin/pudding build --site org --env test --queue docker --instance-type c3.2xlarge",
        "",
    ]
    return "\n".join(lines)
