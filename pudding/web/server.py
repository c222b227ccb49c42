"""waitress, with a graceful stop, limits on what a client may hold, and JSON errors.

`DELETE /`, SIGTERM and SIGINT all call `stop()`; calling it again is harmless.

waitress closes a connection only after `channel_timeout` of silence, so a client that
sends a header byte now and then keeps its socket forever; `_Server` also closes a
connection whose request has not fully arrived within `request_timeout` of its first
byte. The errors waitress answers itself (a body over its limit, framing errors) carry
the API's JSON error shape. Both reach into waitress 3's channel and server classes.
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from pudding.config import ServerLimits

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


class _JSONErrorTask(ErrorTask):
    """waitress's own error responses, in the API's `{"errors": [{"details": ...}]}`."""

    def execute(self) -> None:
        error = self.request.error
        body = orjson.dumps({"errors": [{"details": f"{error.reason}: {error.body}"}]})
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/vnd.api+json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        log.info("request refused", status=error.code, reason=error.reason,
                 remote_addr=self.channel.addr[0] if self.channel.addr else None)


class _Channel(HTTPChannel):
    error_task_class = _JSONErrorTask
    # When the request now being read began to arrive (time.time(), as waitress keeps).
    reading_since = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.reading_since = time.time()
        return bool(super().received(data))


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, *args: Any, request_timeout: float, **kwargs: Any) -> None:
        self.request_timeout = request_timeout
        super().__init__(*args, **kwargs)

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress) and those whose request is overdue (ours)."""
        super().maintenance(now)
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            if channel.request is not None and channel.reading_since < cutoff:
                channel.will_close = True


def _allow_open_files(needed: int) -> None:
    """Raise this process's open-file limit to `needed` if it is lower (up to the hard
    limit): each connection is a file, and a connection over the limit is refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        if wanted < needed:
            log.warning("open-file limit below the connection limit",
                        open_files=wanted, connection_limit=needed)


class GracefulServer:
    def __init__(
        self,
        make_app: Callable[[Callable[[], None]], WSGIApp],
        host: str,
        port: int,
        *,
        threads: int = 8,
        max_request_body_size: int = 1024 * 1024,
        limits: ServerLimits | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        """`make_app(stop)` builds the WSGI app; `stop` is what its `DELETE /` calls."""
        self._stopping = threading.Event()
        self._drain_timeout = drain_timeout
        limits = limits or ServerLimits()
        _allow_open_files(limits.connection_limit + 64)
        # Our own socket, so waitress runs exactly one listener (no v4/v6 fan-out) and
        # a bind error surfaces here, before anything else starts.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
        adjustments = Adjustments(
            sockets=[listener],
            threads=threads,
            ident="pudding",
            max_request_body_size=max_request_body_size,
            max_request_header_size=limits.max_header_bytes,
            connection_limit=limits.connection_limit,
            channel_timeout=limits.idle_timeout,
            # Timeouts are checked this often; the check is a pass over the open
            # connections, a few microseconds each.
            cleanup_interval=1,
            # select() cannot watch a file descriptor numbered 1024 or more.
            asyncore_use_poll=True,
            trusted_proxy=limits.trusted_proxy or None,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"}
            if limits.trusted_proxy else set(),
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(threads)
        self._server = _Server(
            make_app(self.stop),
            {},
            True,
            listener,
            dispatcher=dispatcher,
            adj=adjustments,
            bind_socket=False,
            sockinfo=(listener.family, listener.type, listener.proto, listener.getsockname()),
            request_timeout=limits.request_timeout,
        )

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
