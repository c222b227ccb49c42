"""The instance termination job: terminate one pudding-made instance and say so.

Only instances tagged with a pudding build id are terminated: the API's token must not
be a way to kill anything else in the account. Transient AWS errors raise, so Sidekiq
retries the job; errors that a retry cannot fix (no such instance, not pudding's, access
denied) are reported on Slack and end the job.
"""

from __future__ import annotations

from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from pudding.aws.ec2 import BUILD_TAG, is_transient, tags_of
from pudding.jobs.names import INSTANCE_TERMINATION_JOB, INSTANCE_TERMINATIONS_QUEUE
from pudding.jobs.services import ServiceJob, Services

log = structlog.get_logger("pudding.jobs.terminations")


class InstanceTerminationJob(ServiceJob):
    sidekiq_class = INSTANCE_TERMINATION_JOB
    sidekiq_options = {"queue": INSTANCE_TERMINATIONS_QUEUE, "retry": True}

    def perform(self, instance_id: str, slack_channel: str = "") -> None:
        services = self.services
        try:
            instance = services.ec2.instance(instance_id)
            if instance is not None and BUILD_TAG not in tags_of(instance):
                report_failure(services, instance_id, slack_channel,
                               "not an instance pudding launched")
                return
            if instance is not None and instance["State"]["Name"] != "terminated":
                services.ec2.terminate(instance_id)
        except (ClientError, BotoCoreError) as error:
            if is_transient(error):
                raise
            report_failure(services, instance_id, slack_channel, str(error))
            return
        services.cache.remove_instance(instance_id)
        if instance is None:
            report_failure(services, instance_id, slack_channel, "no such instance")
            return
        services.slack.notify(slack_channel, f"Terminating *{instance_id}* :boom:")
        log.info("instance terminated", instance_id=instance_id)

    def retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        instance_id, channel = [*job["args"], "", ""][:2]
        report_failure(self.services, str(instance_id), str(channel), str(exc))


def report_failure(services: Services, instance_id: str, channel: str, reason: str) -> None:
    log.error("instance not terminated", instance_id=instance_id, reason=reason)
    services.slack.notify(channel, f"Failed to terminate *{instance_id}* :scream_cat: _({reason})_")
