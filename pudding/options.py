"""Command-line options that bin/pudding-server and bin/pudding-workers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pudding.config import QueueNames

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _all_of(*options: Decorator) -> Decorator:
    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


# instance_builds_queue_name, instance_terminations_queue_name
queue_options = _all_of(
    click.option("--instance-builds-queue-name", envvar="PUDDING_INSTANCE_BUILDS_QUEUE_NAME",
                 default=QueueNames.instance_builds, show_default=True),
    click.option("--instance-terminations-queue-name",
                 envvar="PUDDING_INSTANCE_TERMINATIONS_QUEUE_NAME",
                 default=QueueNames.instance_terminations, show_default=True),
)

# slack_webhook_url, slack_team, slack_token
slack_options = _all_of(
    click.option("--slack-webhook-url", envvar="PUDDING_SLACK_WEBHOOK_URL", default="",
                 help="Slack incoming-webhook URL (preferred over team + token)."),
    click.option("--slack-team", envvar="PUDDING_SLACK_TEAM", default=""),
    click.option("--slack-token", envvar="PUDDING_SLACK_TOKEN", default=""),
)
