"""Slack notifications: best effort, bounded in time, never raising to the caller."""

from __future__ import annotations

import atexit
import json
import queue
import threading
import time
import urllib.error
import urllib.request

import structlog

from pudding.config import SlackSettings

log = structlog.get_logger("pudding.slack")


def normalize_channel(channel: str) -> str:
    """Prefix `#` only when missing; `@user` and empty channels stay as they are."""
    channel = channel.strip()
    if not channel or channel.startswith(("#", "@")):
        return channel
    return f"#{channel}"


class SlackNotifier:
    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self._endpoint = settings.endpoint()

    @property
    def configured(self) -> bool:
        return self._endpoint is not None

    def notify(self, channel: str, text: str) -> bool:
        """Post `text`; True when Slack accepted it. Sends nothing when unconfigured.

        An empty channel posts to the webhook's own default channel.
        """
        if self._endpoint is None:
            return False
        body = {
            "text": text,
            "username": self.settings.username,
            "icon_emoji": self.settings.icon_emoji,
        }
        if channel := normalize_channel(channel):
            body["channel"] = channel
        request = urllib.request.Request(
            self._endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                response.read()
                return True
        except Exception as error:
            # The endpoint URL holds a secret (webhook path or token): log only the error.
            log.warning("slack notification failed", channel=channel, error=_describe(error))
            return False


class BackgroundNotifier:
    """Posts from a thread of its own, so that a slow or hung Slack never holds up the
    caller (an HTTP request, and with it one of the server's few threads).

    Messages wait in a bounded queue; when it is full a message is dropped, with a
    warning. At exit, what is queued is still sent, for at most `drain_timeout` seconds.
    """

    def __init__(
        self, notifier: SlackNotifier, capacity: int = 1000, drain_timeout: float = 10.0
    ) -> None:
        self.notifier = notifier
        self._messages: queue.Queue[tuple[str, str] | None] = queue.Queue(capacity)
        self._drain_timeout = drain_timeout
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self, channel: str, text: str) -> None:
        if not self.notifier.configured:
            return
        self._start()
        try:
            self._messages.put_nowait((channel, text))
        except queue.Full:
            log.warning("slack notification dropped: too many waiting", channel=channel)

    def close(self) -> None:
        """Send what is queued (within the drain timeout), then stop."""
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + self._drain_timeout
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                self._messages.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("slack notifications not sent at exit",
                        waiting=self._messages.qsize())

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slack", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while (message := self._messages.get()) is not None:
            # Each message on its own: one that cannot be sent must not end the others.
            try:
                self.notifier.notify(*message)
            except Exception:
                log.exception("slack notification dropped: it could not be sent")


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error).__name__}: {error.reason}"
    return type(error).__name__
