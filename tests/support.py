"""Helpers shared by the test suites: free ports, a private redis-server, child processes
with their output in a file, and a stand-in for Slack."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import redis

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float = 20, message: str = "", interval: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy, and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or check}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the tests' own, on a free port, in a throwaway dir. A test may
    stop it and start it again: it comes back on the same port, empty, or with
    `appendonly` holding what it had (its AOF is in the dir; `stop` is a clean shutdown,
    which writes the AOF out, so no acknowledged write is lost)."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        persistence = ["yes", "--appendfsync", "everysec"] if self.appendonly else ["no"]
        process = self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.workdir), "--save", "", "--appendonly", *persistence,
             "--databases", "16"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """kill -9: no shutdown, every client's connection dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class LoggedProcess:
    """A child process with its stdout and stderr in a file; `stop` leaves nothing behind."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path,
        new_session: bool = False,
    ) -> None:
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=new_session,
        )

    def output(self) -> str:
        """What the process wrote, also once it is stopped (its log file closed)."""
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self, grace: float = 10) -> None:
        """TERM, and KILL after `grace` seconds (at once when `grace` is 0)."""
        if self.process.poll() is None:
            if grace:
                self.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(grace)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


class SlackStandIn:
    """A local HTTP server that records what a Slack webhook would receive.

    `delay` and `status` shape its answers; `received` holds the JSON bodies and
    `paths` the request paths, in arrival order.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.arrived = 0
        self.delay = 0.0
        self.status = 200
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.arrived += 1
                time.sleep(stand_in.delay)
                stand_in.paths.append(self.path)
                stand_in.received.append(json.loads(body))
                self.send_response(stand_in.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/secret"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def texts(self) -> list[str]:
        return [message["text"] for message in self.received]

    def wait_for_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The first `count` messages, once they have arrived (the web posts in the background)."""
        wait_for(lambda: len(self.received) >= count, timeout, f"{count} Slack messages")
        return self.received[:count]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
