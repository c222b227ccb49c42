"""The instance build job: from a build record to one tagged, configured EC2 instance.

Delivery is at least once and a job may die between any two steps, so every step first
looks for what an earlier attempt made:

1. image: the requested AMI, or the newest active one for the role (no state),
2. security-group: `pudding-<build id>`, found by name and tag before it is created; its
   id goes into the build record,
3. init-script: unless the build's instance exists, the script is rendered and stored
   with the one-time password (the stored password is reused while it lives, so the
   user-data of an instance launched by an earlier attempt stays valid),
4. launch: unless an instance tagged with the build id exists, RunInstances with the tags
   and a ClientToken derived from the build id (EC2 itself then refuses a second launch),
5. instance: the instance id goes into the build record,
6. name: the Name tag from the build's name template,
7. notify: Slack hears of the new instance,
8. started: the build becomes `started` (unless the instance already reported `finished`).

A failed attempt leaves its error in the build; after the last retry the build is
`failed` and Slack is told.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from pudding.aws.ec2 import BUILD_TAG, Image
from pudding.jobs.names import INSTANCE_BUILD_JOB, INSTANCE_BUILDS_QUEUE
from pudding.jobs.services import ServiceJob, Services
from pudding.store.builds import FAILED, FINISHED, STARTED, Build, UnknownBuild
from pudding.templates import (
    DEFAULT_NAME_TEMPLATE,
    NameTemplateError,
    name_context,
    render_name,
)

STEPS = (
    "image", "security-group", "init-script", "launch", "instance", "name", "notify", "started",
)

log = structlog.get_logger("pudding.jobs.builds")


class BuildStepFailed(RuntimeError):
    def __init__(self, step: str, error: Exception) -> None:
        detail = str(error) or type(error).__name__
        super().__init__(f"{step}: {detail}")
        self.step = step


def security_group_name(build_id: str) -> str:
    return f"pudding-{build_id}"


def client_token(build_id: str) -> str:
    return f"pudding-{build_id}"


def build_urls(web_hostname: str, build_id: str, password: str) -> tuple[str, str]:
    """(init-script URL, instance-build URL), both carrying the one-time basic auth.

    A path in the web hostname is kept as a prefix (the original dropped it).
    """
    base = urlsplit(web_hostname)
    netloc = f"x:{password}@{base.netloc}"
    prefix = base.path.rstrip("/")
    return (
        urlunsplit((base.scheme, netloc, f"{prefix}/init-scripts/{build_id}", "", "")),
        urlunsplit((base.scheme, netloc, f"{prefix}/instance-builds/{build_id}", "", "")),
    )


class InstanceBuildJob(ServiceJob):
    sidekiq_class = INSTANCE_BUILD_JOB
    sidekiq_options = {"queue": INSTANCE_BUILDS_QUEUE, "retry": True}

    def perform(self, build_id: str) -> None:
        InstanceBuilder(self.services).run(build_id)

    def retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        error = str(exc) or type(exc).__name__
        InstanceBuilder(self.services).give_up(str(job["args"][0]), error)


class InstanceBuilder:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.ec2 = services.ec2
        self.builds = services.builds

    def run(self, build_id: str) -> None:
        build = self.builds.get(build_id)
        if build is None:
            log.error("no such instance build (expired?); nothing to do", build_id=build_id)
            return
        if build.state in (STARTED, FINISHED):
            log.info("instance build already done", build_id=build_id, state=build.state)
            return
        try:
            self._build(build)
        except BuildStepFailed as error:
            self._record_error(build_id, str(error))
            raise

    def give_up(self, build_id: str, error: str) -> None:
        """After the last retry: the build is failed, and Slack hears why."""
        try:
            build = self.builds.transition(
                build_id, FAILED, unless=(STARTED, FINISHED), error=error
            )
        except UnknownBuild:
            return
        if build.state != FAILED:  # started or finished after all
            return
        self.services.slack.notify(
            build.slack_channel,
            f"Failed to start an instance for instance build *{build_id}* "
            f":scream_cat: _({error})_",
        )
        log.error("instance build failed", build_id=build_id, error=error)

    def _build(self, build: Build) -> None:
        settings = self.services.settings
        with self._step("image"):
            image = self.ec2.resolve_image(build.ami, build.role)
        with self._step("security-group"):
            group_id = self.ec2.ensure_security_group(
                security_group_name(build.id), build.id, settings.ssh_cidr
            )
            if build.security_group_id != group_id:
                self.builds.update(build.id, security_group_id=group_id)
        with self._step("init-script"):
            instance_id = self.ec2.build_instance(build.id)
            user_data = "" if instance_id else self._store_init_script(build, image)
        if not instance_id:
            with self._step("launch"):
                instance_id = self.ec2.launch(
                    image_id=image.id,
                    instance_type=build.instance_type,
                    group_id=group_id,
                    user_data=user_data,
                    tags={
                        "role": build.role, "site": build.site, "env": build.env,
                        "queue": build.queue, BUILD_TAG: build.id,
                    },
                    client_token=client_token(build.id),
                )
            log.info("instance launched", build_id=build.id, instance_id=instance_id,
                     image_id=image.id)
        with self._step("instance"):
            if build.instance_id != instance_id:
                self.builds.update(build.id, instance_id=instance_id)
        with self._step("name"):
            context = name_context(asdict(build), instance_id)
            try:
                name = render_name(build.name_template, context)
            except NameTemplateError as error:
                # Accepted by an older API (Jinja); the instance exists, so it still
                # gets a name rather than a failed build.
                log.warning("name template no longer parses: default name used",
                            build_id=build.id, error=str(error))
                name = render_name(DEFAULT_NAME_TEMPLATE, context)
            self.ec2.tag(instance_id, {"Name": name})
        with self._step("notify"):
            self.services.slack.notify(
                build.slack_channel,
                f"Started instance `{instance_id}` for instance build *{build.id}*",
            )
        with self._step("started"):
            # The instance may have called back already.
            self.builds.transition(build.id, STARTED, unless=(FINISHED,), error="")

    def _store_init_script(self, build: Build, image: Image) -> str:
        """Render and store the script; returns the instance's user-data."""
        settings = self.services.settings
        meta = self.services.meta_yml
        password = self.services.scripts.password(build.id) or str(uuid.uuid4())
        init_script_url, instance_build_url = build_urls(
            settings.web_hostname, build.id, password
        )
        script = self.services.init_script.render({
            "env": build.env,
            "site": build.site,
            "queue": build.queue,
            "role": build.role,
            "ami": image.id,
            "instance_type": build.instance_type,
            "instance_rsa": settings.instance_rsa,
            "slack_channel": build.slack_channel,
            "papertrail_site": meta.papertrail_site(build.site) if meta.configured else "",
            "instance_yml": (
                meta.instance_yml(build.site, build.env, build.queue, build.count)
                if meta.configured else ""
            ),
            "instance_build_id": build.id,
            "instance_build_url": instance_build_url,
            "init_script_url": init_script_url,
            "count": build.count,
        })
        self.services.scripts.store(build.id, script, password, ttl=settings.init_script_ttl)
        return f"#include {init_script_url}\n"

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            raise BuildStepFailed(name, error) from error
        self.services.checkpoint(name)

    def _record_error(self, build_id: str, error: str) -> None:
        try:
            self.builds.update(build_id, error=error)
        except Exception as problem:  # the job's own error matters more than this one
            log.warning("could not record the build's error", build_id=build_id,
                        error=str(problem))
