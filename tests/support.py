"""Helpers shared by the test suites: free ports, and a stand-in for Slack."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

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
