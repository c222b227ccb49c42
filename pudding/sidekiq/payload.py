"""The job payload: bytes in Redis, a dict in Python, JSON written as Ruby writes it.

A payload is whatever bytes a queue held. Bytes that are not UTF-8 are carried through
a parse and a dump unchanged (as lone surrogates, Python's "surrogateescape"), so a job
whose JSON holds such a byte still runs, and retries with that very byte.
"""

from __future__ import annotations

import codecs
import json
import math
import time
from typing import Any


def now() -> float:
    """Seconds since the epoch as a float: the timestamp format every Sidekiq Web reads."""
    return time.time()


def _encode_surrogates(error: UnicodeError) -> tuple[bytes, int]:
    """Escaped bytes go back to the byte they stood for; any other lone surrogate (from a
    `\\ud800` escape in the JSON read) is written as that escape again. Both occur only
    inside JSON strings, so the output is the JSON that was read."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = bytearray()
    for char in error.object[error.start : error.end]:
        code = ord(char)
        out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else b"\\u%04x" % code
    return bytes(out), error.end


codecs.register_error("pudding.payload", _encode_surrogates)


def dump(job: Any) -> bytes:
    """Compact, UTF-8, non-ASCII unescaped: byte for byte Ruby's JSON.generate style."""
    text = json.dumps(job, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "pudding.payload")


def load(raw: bytes | str) -> dict[str, Any]:
    """Parse a payload; anything but a JSON object is a ValueError that says why."""
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    try:
        job = json.loads(text)
    except RecursionError:
        raise ValueError("job payload nests too deeply to parse") from None
    if not isinstance(job, dict):
        raise ValueError(f"job payload is a JSON {type(job).__name__}, not an object")
    return job


def printable(raw: bytes, limit: int | None = None) -> str:
    """A payload (its first `limit` bytes) for a log line or a page: bytes that are not
    UTF-8 shown as U+FFFD, so no reader of it meets them."""
    return raw[:limit].decode("utf-8", "replace")


def timestamp(value: Any) -> float | None:
    """A job timestamp in seconds, whatever Sidekiq version wrote it.

    Floats are seconds (6.x/7.x); integers of 10**11 and more are Sidekiq 8's
    milliseconds, smaller ones are seconds (as Go writers emit them).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and value >= 10**11:
        return value / 1000
    return float(value)


def check_native(value: Any, path: str = "args") -> None:
    """Refuse arguments that do not survive a JSON round trip, as Ruby 7+ clients do."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}, which JSON cannot carry")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_native(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has the non-string key {key!r}; JSON keys are strings")
            check_native(item, f"{path}[{key!r}]")
        return
    raise ValueError(f"{path} is a {type(value).__name__}, not a native JSON type")
