"""What pudding's jobs and the EC2 sync use, made once per worker process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pudding.aws.ec2 import EC2
from pudding.config import WorkerSettings
from pudding.jobs.init_script import InitScriptTemplate
from pudding.jobs.instance_yml import MetaYML
from pudding.sidekiq import Job
from pudding.slack import SlackNotifier
from pudding.store.builds import BuildStore
from pudding.store.cache import Cache
from pudding.store.init_scripts import InitScripts


def _carry_on(step: str) -> None:
    """The default checkpoint: nothing happens between steps."""


@dataclass(frozen=True)
class Services:
    settings: WorkerSettings
    builds: BuildStore
    scripts: InitScripts
    cache: Cache
    ec2: EC2
    slack: SlackNotifier
    init_script: InitScriptTemplate
    meta_yml: MetaYML
    # Called after each build step with its name; the tests' fault switch kills the
    # process there (see pudding.jobs.__main__).
    checkpoint: Callable[[str], None] = _carry_on

    @classmethod
    def create(
        cls,
        settings: WorkerSettings,
        ec2: EC2,
        checkpoint: Callable[[str], None] | None = None,
    ) -> Services:
        """Raises InitScriptTemplateError or MetaYMLError when those texts are unusable."""
        redis = settings.redis.client()
        return cls(
            settings=settings,
            builds=BuildStore(redis),
            scripts=InitScripts(redis),
            cache=Cache(redis),
            ec2=ec2,
            slack=SlackNotifier(settings.slack),
            init_script=InitScriptTemplate(settings.init_script_template),
            meta_yml=MetaYML(settings.meta_yml),
            checkpoint=checkpoint or _carry_on,
        )


class ServiceJob(Job):
    """A pudding job: the worker's registry factory hands it the process's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
