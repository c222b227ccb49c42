"""Fixtures for the HTTP API tests: the app on the session's Redis, a Slack stand-in,
Ruby's view of the queues, and the real server as a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from pudding.config import RedisSettings, SlackSettings, WebConfig
from tests.support import LoggedProcess, RedisServer, SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-9c1f"
AUTH = {"Authorization": f"token {TOKEN}"}



@pytest.fixture
def config(redis_url: str, slack: SlackStandIn) -> WebConfig:
    return WebConfig(
        auth_token=TOKEN,
        redis=RedisSettings(url=redis_url),
        slack=SlackSettings(webhook_url=slack.url, timeout=2.0),
        max_build_count=10,
    )


class ShutdownCalls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def shutdown_calls() -> ShutdownCalls:
    return ShutdownCalls()


@pytest.fixture
def app(config: WebConfig, shutdown_calls: ShutdownCalls) -> falcon.App:
    from pudding.web import create_app

    return create_app(config, shutdown=shutdown_calls)


@pytest.fixture
def client(app: falcon.App) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)


def ruby_queue(redis_url: str, queue: str) -> list[dict[str, Any]]:
    """The jobs of a queue as Ruby's `Sidekiq::Queue` sees them: class, args, jid."""
    script = (
        'require "sidekiq"; require "sidekiq/api"; require "json"; '
        "puts JSON.generate(Sidekiq::Queue.new(ARGV[0]).map { |j| "
        '{"class" => j.klass, "args" => j.args, "jid" => j.jid, "queue" => j.queue} })'
    )
    done = subprocess.run(
        ["ruby", "-e", script, queue],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


needs_ruby = pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of one test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


class ServerProcess(LoggedProcess):
    """bin/pudding-server as a child process, its output in a file."""

    def __init__(self, log_path: Path, env: dict[str, str], listen_via: str,
                 args: tuple[str, ...] = ()) -> None:
        """`listen_via` says how the address is given: the `--addr` flag, `PUDDING_ADDR`,
        or `PORT` (then on all interfaces). The port is 0: the server binds a free one
        itself (no window for another process to take it) and logs which."""
        env = {k: v for k, v in {**os.environ, **env}.items() if k not in ("PORT", "PUDDING_ADDR")}
        if listen_via == "--addr":
            args = ("--addr", "127.0.0.1:0", *args)
        else:
            env[listen_via] = "0" if listen_via == "PORT" else "127.0.0.1:0"
        super().__init__([str(ROOT / "bin" / "pudding-server"), *args], env, log_path, ROOT)
        deadline = time.monotonic() + 20
        while not (found := re.search(r'\{[^\n]*"event": "listening"[^\n]*', self.output())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(grace=0)
                raise AssertionError(f"no pudding-server:\n{self.output()}")
            time.sleep(0.05)
        self.port = int(json.loads(found[0])["port"])
        urllib.request.urlopen(self.url("/"), timeout=5).read()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(listen_via: str = "--addr", args: tuple[str, ...] = (), **env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server-{len(started)}.log", env, listen_via, args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(grace=0)

