"""Slack notifications: best effort, bounded in time, never raising to the caller."""

from __future__ import annotations

import json
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


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error).__name__}: {error.reason}"
    return type(error).__name__
