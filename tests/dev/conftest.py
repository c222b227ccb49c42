"""Fixtures for running pudding as an operator would: processes whose whole tree is
stopped (and checked gone) in teardown, the API as a process, moto as EC2, and a stand-in
for Sentry's envelope endpoint."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from pudding.dev import moto_ec2
from pudding.jobs.sources import compress
from tests.support import LoggedProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
TOKEN = "dev-tests-token-7c1d9e4b2a"
INSTANCE_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi6k3Jp6y1D5FQ0j1HkP0Yd3hVd\n"
    "-----END RSA PRIVATE KEY-----\n"
)
INIT_SCRIPT = (
    "#!/bin/sh\n# build {{ instance_build_id }}\ncurl -X PATCH '{{ instance_build_url }}'\n"
)



def http(
    url: str, method: str = "GET", data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers(url: str, expect: bytes = b"") -> bool:
    try:
        status, body = http(url)
    except OSError:
        return False
    return status == 200 and expect in body


class Proc(LoggedProcess):
    """A command in its own session, output in a file; `stop` ends its whole tree."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path,
        cwd: Path = ROOT,
    ) -> None:
        super().__init__(argv, env, log_path, cwd, new_session=True)
        self._seen: dict[int, psutil.Process] = {}

    def alive(self) -> bool:
        return self.process.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """The process and everything under it now (remembered for `leftovers`)."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for process in tree:
            self._seen[process.pid] = process
        return tree

    def leftovers(self) -> list[psutil.Process]:
        """Processes of the tree seen so far that still run (zombies count as gone)."""
        alive = []
        for process in self._seen.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        return alive

    def stop(self, grace: float = 20) -> None:
        self.descendants()
        if self.alive():
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        for process in self.leftovers():
            process.kill()
        if self.alive():
            self.process.kill()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Starts processes that teardown stops, with their trees."""
    started: list[Proc] = []

    def run(name: str, argv: Sequence[str], env: Mapping[str, str], **kwargs: Any) -> Proc:
        proc = Proc(argv, env, tmp_path / f"{name}.log", **kwargs)
        started.append(proc)
        return proc

    yield run
    for proc in reversed(started):
        proc.stop()


def base_env() -> dict[str, str]:
    """The test's environment without any pudding, Sidekiq, Redis, AWS or Sentry setting."""
    dropped = ("PUDDING_", "SIDEKIQ_", "REDIS_", "AWS_", "SENTRY_", "INSTANCE_", "INIT_SCRIPT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)
            and k not in ("PORT", "DYNO", "QUEUES")}


class Moto:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = moto_ec2.client(url)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_EC2": self.url,
            "AWS_ACCESS_KEY_ID": moto_ec2.CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": moto_ec2.CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": moto_ec2.REGION,
        }


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's EC2 with an active image per role; it refuses unknown instance types."""
    port = free_port()
    env = {**moto_ec2.env(base_env()), "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"}
    proc = Proc(moto_ec2.argv(port), env, tmp_path_factory.mktemp("moto") / "moto.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: moto_ec2.answers(url), 60, "moto")
        moto_ec2.seed_images(url, ["worker"])
        yield Moto(url)
    finally:
        proc.stop()


def worker_env(redis_url: str, moto: Moto, web_url: str) -> dict[str, str]:
    """What bin/pudding-workers needs, with short intervals."""
    return {
        **base_env(),
        **moto.env(),
        "PUDDING_REDIS_URL": redis_url,
        "PUDDING_WEB_HOSTNAME": web_url,
        "INSTANCE_RSA": compress(INSTANCE_RSA),
        "INIT_SCRIPT_TEMPLATE": compress(INIT_SCRIPT),
        "PUDDING_MINI_WORKER_INTERVAL": "1",
        "SIDEKIQ_HEARTBEAT_INTERVAL": "0.5",
        "SIDEKIQ_POLL_INTERVAL_AVERAGE": "0.5",
    }


class Api:
    def __init__(self, proc: Proc, url: str) -> None:
        self.proc = proc
        self.url = url

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        return http(self.url + path, method, data,
                    {"Authorization": f"token {TOKEN}"} if headers is None else headers)


def start_api(start: Callable[..., Proc], redis_url: str, **env: str) -> Api:
    port = free_port()
    proc = start("api", [str(BIN / "pudding-server"), "--addr", f"127.0.0.1:{port}"], {
        **base_env(), "PUDDING_AUTH_TOKEN": TOKEN, "PUDDING_REDIS_URL": redis_url, **env,
    })
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.alive(), proc.output()
        return answers(f"{url}/", b"ohai")

    wait_for(up, message="pudding-server", timeout=30)
    return Api(proc, url)


@pytest.fixture
def api(start: Callable[..., Proc], redis_url: str) -> Api:
    return start_api(start, redis_url)


class SentryStandIn:
    """Sentry's envelope endpoint on loopback: keeps every envelope it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                stand_in.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_port}/42"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        """The error events among the envelopes' items."""
        found = []
        for body in list(self.bodies):
            lines = body.split(b"\n")
            index = 1  # past the envelope header
            while index < len(lines) - 1:
                header = json.loads(lines[index])
                payload = lines[index + 1]
                if header.get("type") == "event":
                    found.append(json.loads(payload))
                index += 2
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    stand_in = SentryStandIn()
    yield stand_in
    stand_in.close()
