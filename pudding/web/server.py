"""waitress, with a graceful stop: stop accepting, let open requests finish, return.

`DELETE /`, SIGTERM and SIGINT all call `stop()`; calling it again is harmless.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server

log = structlog.get_logger("pudding.web")

WSGIApp = Callable[..., Any]


class OncePerInterval(logging.Filter):
    """Lets one record through per `interval` seconds.

    waitress warns "Task queue depth is N" for every request that waits for a thread:
    under load that is most of the log, and a good share of the server's CPU.
    """

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._next = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


class GracefulServer:
    def __init__(
        self,
        make_app: Callable[[Callable[[], None]], WSGIApp],
        host: str,
        port: int,
        *,
        threads: int = 8,
        max_request_body_size: int = 1024 * 1024,
        drain_timeout: float = 30.0,
    ) -> None:
        """`make_app(stop)` builds the WSGI app; `stop` is what its `DELETE /` calls."""
        self._stopping = threading.Event()
        self._drain_timeout = drain_timeout
        # Our own socket, so waitress runs exactly one listener (no v4/v6 fan-out) and
        # a bind error surfaces here, before anything else starts.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
        server = create_server(
            make_app(self.stop),
            sockets=[listener],
            threads=threads,
            ident="pudding",
            max_request_body_size=max_request_body_size,
        )
        assert isinstance(server, TcpWSGIServer)
        self._server = server

    @property
    def address(self) -> tuple[str, int]:
        return str(self._server.effective_host), int(self._server.effective_port)

    def stop(self) -> None:
        """Ask for a graceful stop; safe from any thread, any number of times."""
        self._stopping.set()

    def run(self) -> None:
        """Serve until stopped; returns once every open request has been answered."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())
        threading.Thread(target=self._drain_when_stopped, name="drain", daemon=True).start()
        host, port = self.address
        log.info("listening", host=host, port=port)
        self._server.run()
        self._server.task_dispatcher.shutdown()
        log.info("stopped")

    def _drain_when_stopped(self) -> None:
        self._stopping.wait()
        log.info("stopping: no new connections, finishing open requests")
        self._in_loop(self._stop_listening)
        deadline = time.monotonic() + self._drain_timeout
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        # Closing every socket (idle keep-alive ones too) empties the map: run() returns.
        self._in_loop(lambda: wasyncore.close_all(self._server._map))

    def _stop_listening(self) -> None:
        self._server.accepting = False
        self._server.del_channel()
        self._server.socket.close()

    def _in_loop(self, thunk: Callable[[], None]) -> None:
        """Run `thunk` on waitress's event-loop thread (the socket map is not thread-safe)."""
        done = threading.Event()

        def run() -> None:
            try:
                thunk()
            finally:
                done.set()

        self._server.trigger.pull_trigger(run)
        done.wait(5)

    def _busy(self) -> bool:
        """Whether a request is being handled or its response is not yet fully sent."""
        try:
            channels = list(self._server.active_channels.values())
        except RuntimeError:  # resized by the loop thread while we copied it
            return True
        return any(channel.requests or channel.total_outbufs_len for channel in channels)
