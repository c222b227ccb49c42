"""The rules for what clients send: field patterns (the OpenAPI document uses the same
ones), the Slack channel and instance id checks, and one value per query parameter."""

from __future__ import annotations

import re
from typing import Any

import falcon

INSTANCE_TYPE = r"[a-z0-9][a-z0-9-]*\.[a-z0-9]+"
AMI = r"ami-[0-9a-f]{8,17}"
WORD = r"[A-Za-z0-9_.-]{1,64}"
# EC2's two forms: 8 hex digits (before 2016) and 17.
INSTANCE_ID = r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})"
# `#channel`, `@user` or a channel id; no spaces, no `<!channel>`-style mentions.
SLACK_CHANNEL = r"[#@]?[\w.-]{1,79}"
MAX_CHANNEL = 80
# The query and form parameters the API reads; it ignores others, as the Go original did.
PARAMS = frozenset({
    "limit", "state", "instance-id", "slack-channel", "env", "site", "role", "queue", "active",
})

_INSTANCE_ID = re.compile(INSTANCE_ID)
_SLACK_CHANNEL = re.compile(SLACK_CHANNEL)


def channel_problem(channel: str) -> str | None:
    """Why `channel` (already stripped) cannot be a Slack channel, or None."""
    if len(channel) > MAX_CHANNEL:
        return f"slack_channel must be at most {MAX_CHANNEL} characters"
    if channel and not _SLACK_CHANNEL.fullmatch(channel):
        return 'slack_channel must be a channel ("#builds"), a user ("@ops") or a channel id'
    return None


def checked_channel(channel: str) -> str:
    """`channel` stripped, or a 400 saying what is wrong with it."""
    channel = channel.strip()
    if problem := channel_problem(channel):
        raise falcon.HTTPBadRequest(description=problem)
    return channel


def checked_instance_id(instance_id: str) -> str:
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise falcon.HTTPBadRequest(
            description='instance-id must be an EC2 instance id like "i-0123456789abcdef0"'
        )
    return instance_id


def single_values(params: dict[str, Any], where: str) -> dict[str, str]:
    """`params` with one value each; a repeated parameter the API reads is a 400 naming
    it (which of the values was meant cannot be known)."""
    for name, value in params.items():
        if isinstance(value, list) and name in PARAMS:
            raise falcon.HTTPBadRequest(description=f'the {where} parameter "{name}" is repeated')
    return params


class SingleParams:
    """Middleware: a query parameter the API reads, given more than once, is a 400."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, str]
    ) -> None:
        if resource is not None:
            single_values(req.params, "query")
