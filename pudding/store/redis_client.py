"""The client the stores talk to Redis with: each thread sends its commands on a
connection of its own.

redis-py's pool hands a connection out and back for every command, and polls it on the
way out; each of those system calls lets another of waitress's threads take the GIL.
With one connection per thread, a command costs its send and its receive.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from redis import Redis


class ThreadLocalRedis(Redis):
    """A `Redis` whose commands go out on the calling thread's own connection, taken from
    the pool at the thread's first command (and again in a forked child). Pipelines and
    transactions take pool connections as usual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = threading.local()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self._thread_client().execute_command(*args, **options)

    def _thread_client(self) -> Redis:
        owner = getattr(self._local, "owner", None)
        if owner is None or owner[0] != os.getpid():
            client = Redis(connection_pool=self.connection_pool, single_connection_client=True)
            owner = self._local.owner = (os.getpid(), client)
        return owner[1]
