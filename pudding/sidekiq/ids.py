"""Random ids (jids, UUIDs) from the OS's generator, read 4 KiB at a time.

Each `os.urandom` call releases the GIL around its getrandom(2), and under load every
release hands the GIL to another thread: a request that made three ids paid for three
thread switches (see bench/api).
"""

from __future__ import annotations

import os
import threading
import uuid

CHUNK = 4096


class _Buffer(threading.local):
    data = b""


_buffer = _Buffer()


def _forget_in_child() -> None:
    # A forked child must not hand out the ids its parent has still to use.
    _buffer.data = b""


os.register_at_fork(after_in_child=_forget_in_child)


def _random_bytes(size: int) -> bytes:
    """`size` (at most CHUNK) random bytes."""
    if len(_buffer.data) < size:
        _buffer.data = os.urandom(CHUNK)
    taken, _buffer.data = _buffer.data[:size], _buffer.data[size:]
    return taken


def new_jid() -> str:
    """Twelve random bytes as 24 lowercase hex characters, like Ruby's jids."""
    return _random_bytes(12).hex()


def new_uuid() -> uuid.UUID:
    """A version 4 UUID, as `uuid.uuid4()` makes."""
    return uuid.UUID(bytes=_random_bytes(16), version=4)
