"""The client the stores talk to Redis with: each thread sends its commands on a
connection of its own, with nothing around the send and the read.

redis-py's pool hands a connection out and back for every command and polls it on the
way out, and its client wraps each command in a retry loop and a timing record; each
of those layers costs a request CPU, and each system call lets another of waitress's
threads take the GIL. With one connection per thread and no retry (the API answers
503 at once when Redis is down), a command costs its packing, its send and its read.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from redis import ConnectionError, Redis
from redis.connection import AbstractConnection


class _Forks:
    """How many times this process is a forked child of the one that imported us: a
    connection taken before a fork belongs to the parent."""

    count = 0

    @classmethod
    def happened(cls) -> None:
        cls.count += 1


os.register_at_fork(after_in_child=_Forks.happened)


class ThreadLocalRedis(Redis):
    """A `Redis` whose commands go out on the calling thread's own connection, taken from
    the pool at the thread's first command (and again in a forked child). A command
    whose connection fails is sent again, once, on a new connection.
    Pipelines and transactions take pool connections as usual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = threading.local()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send a command and read its answer. When the connection fails (Redis restarted
        or a proxy dropped the socket while it was idle), the command goes once more on
        a new one: the callers' writes are idempotent, and without this every thread's
        first command after a restart fails."""
        try:
            return self._send(self._thread_connection(), args, options)
        except ConnectionError:
            connection = self._thread_connection()
            connection.disconnect()
            return self._send(connection, args, options)

    def _send(self, connection: AbstractConnection, args: Any, options: Any) -> Any:
        connection.send_command(*args, **options)
        return self.parse_response(connection, args[0], **options)

    def _thread_connection(self) -> AbstractConnection:
        held = getattr(self._local, "held", None)
        if held is None or held[0] != _Forks.count:
            held = self._local.held = (_Forks.count, self.connection_pool.get_connection())
        return held[1]
