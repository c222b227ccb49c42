"""How the engine's long-running loops live through failures: they back off and carry on.

Every loop (fetch, heartbeat, poller, recovery) catches whatever its work raises and asks
a `Backoff` how long to wait. A Redis outage then costs one log line with its traceback
when it starts, a reminder while it lasts, and one line when it ends; not a line, nor a
dead thread, per attempt.
"""

from __future__ import annotations

import time
from typing import Any

REMIND_EVERY = 60.0


class Backoff:
    """The wait doubles from `first` to `most` seconds while failures follow each other."""

    def __init__(self, log: Any, what: str, first: float = 0.1, most: float = 5.0) -> None:
        self.log, self.what, self.first, self.most = log, what, first, most
        self.failures = 0
        self._delay = first
        self._reminded = 0.0

    def failed(self, error: BaseException) -> float:
        """Log the failure (the first in full, later ones now and then); the seconds to wait."""
        self.failures += 1
        now = time.monotonic()
        if self.failures == 1:
            self.log.error(f"{self.what} failed; retrying", exc_info=error)
            self._reminded = now
        elif now - self._reminded >= REMIND_EVERY:
            self.log.error(
                f"{self.what} still failing", failures=self.failures, error=_describe(error)
            )
            self._reminded = now
        delay, self._delay = self._delay, min(self._delay * 2, self.most)
        return delay

    def succeeded(self) -> None:
        if self.failures:
            self.log.info(f"{self.what} works again", failures=self.failures)
            self.failures = 0
            self._delay = self.first


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
