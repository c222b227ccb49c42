"""Helpers for the interop tests: Ruby snippets, supervised subprocesses, a Sidekiq::Web client."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis

from tests.support import LoggedProcess

INTEROP_DIR = Path(__file__).resolve().parent
JOBS_RB = INTEROP_DIR / "jobs.rb"
CONFIG_RU = INTEROP_DIR / "config.ru"

T = TypeVar("T")


class RedisServer(Protocol):
    """The session's redis-server from tests/conftest.py."""

    port: int

    def url(self, db: int = 0) -> str: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ran(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    """The runs a test job recorded under `key` (`py:ran` for ours, `rb:ran` for Ruby's)."""
    return [json.loads(raw) for raw in r.lrange(key, 0, -1)]


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Sequence[ManagedProcess] = (),
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds.

    A process in `alive` that exits meanwhile fails the wait at once, with its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for process in alive:
            if process.poll() is not None:
                raise AssertionError(
                    f"{process.name} exited with {process.poll()} while waiting for {what}\n"
                    f"{process.log_tail()}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class ManagedProcess(LoggedProcess):
    """A subprocess with a name for reports, its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        super().__init__(argv, env, log_path, cwd)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, grace: float = 15) -> None:
        super().stop(grace)


class Ruby:
    """Runs Ruby snippets with sidekiq/api and jobs.rb loaded, against one Redis database.

    The snippet's last value comes back through JSON; keyword arguments go in as the
    Ruby constant `ARGS` (a Hash with string keys).
    """

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self._count = 0

    def __call__(self, code: str, **args: Any) -> Any:
        self._count += 1
        script = self.workdir / f"snippet{self._count}.rb"
        result = self.workdir / f"snippet{self._count}.json"
        script.write_text(
            f'require {json.dumps(str(JOBS_RB))}\n'
            'ARGS = JSON.parse(ENV.fetch("INTEROP_ARGS"))\n'
            f"result = begin\n{code}\nend\n"
            'File.write(ENV.fetch("INTEROP_RESULT"), JSON.generate(result))\n'
        )
        env = {
            **os.environ, "REDIS_URL": self.redis_url,
            "INTEROP_ARGS": json.dumps(args), "INTEROP_RESULT": str(result),
        }
        done = subprocess.run(
            ["ruby", str(script)], env=env, cwd=INTEROP_DIR, capture_output=True, text=True,
            timeout=60, check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"Ruby snippet failed ({done.returncode}):\n{code}\n--- stdout\n{done.stdout}"
                f"\n--- stderr\n{done.stderr}"
            )
        return json.loads(result.read_text())


def identity_of(r: redis.Redis, pid: int) -> str | None:
    """The Sidekiq identity that process `pid` registered in `processes`, if any."""
    for identity in r.smembers("processes"):
        info = r.hget(identity, "info")
        if info and json.loads(info).get("pid") == pid:
            return identity
    return None


@dataclass
class SidekiqProcess:
    """A running worker process (ours or Ruby's) and the identity it registered."""

    process: ManagedProcess
    identity: str

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class WebResponse:
    status: int
    body: str
    location: str | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebClient:
    """A browser stand-in for Sidekiq::Web: keeps the session cookie, posts forms with CSRF."""

    TOKEN = re.compile(r"name='authenticity_token' value='([^']+)'")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def get(self, path: str) -> WebResponse:
        return self._send(urllib.request.Request(self.base_url + path))

    def post_form(
        self, page: str, fields: Mapping[str, str], action: str | None = None
    ) -> WebResponse:
        """Submit a form of `page` as a browser would: with the page's CSRF token and cookie."""
        html = self.get(page)
        assert html.status == 200, f"GET {page} answered {html.status}"
        token = self.TOKEN.search(html.body)
        assert token, f"no CSRF token on {page}"
        data = urllib.parse.urlencode({**fields, "authenticity_token": token.group(1)}).encode()
        return self._send(urllib.request.Request(self.base_url + (action or page), data=data))

    def _send(self, request: urllib.request.Request) -> WebResponse:
        try:
            with self._opener.open(request, timeout=30) as response:
                return WebResponse(response.status, response.read().decode(), None)
        except urllib.error.HTTPError as error:
            return WebResponse(error.code, error.read().decode(errors="replace"),
                               error.headers.get("Location"))
