"""The job payload as JSON, written the way Ruby's `JSON.generate` writes it."""

from __future__ import annotations

import json
import math
import time
from typing import Any


def now() -> float:
    """Seconds since the epoch as a float: the timestamp format every Sidekiq Web reads."""
    return time.time()


def dump(job: Any) -> str:
    """Compact, UTF-8, non-ASCII unescaped: byte for byte Ruby's JSON.generate style."""
    return json.dumps(job, separators=(",", ":"), ensure_ascii=False)


def load(raw: str) -> dict[str, Any]:
    """Parse a payload; anything but a JSON object is an error."""
    job = json.loads(raw)
    if not isinstance(job, dict):
        raise ValueError(f"job payload is a JSON {type(job).__name__}, not an object")
    return job


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
