"""`python -m pudding.jobs` (bin/pudding-workers): pudding's worker process.

The job engine's flags (`-q`, `-c`, `-t`, … as `python -m pudding.sidekiq`) plus the Go
original's worker flags and env vars (spec 6.2); an env var counts only when non-empty and
a flag beats it. Bad settings exit with status 2 and say which. Besides the jobs, the
process runs the EC2 sync (pudding.jobs.sync) in a thread.
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

import pudding.sentry
from pudding.aws.ec2 import EC2, NoCredentials
from pudding.config import (
    ConfigError,
    QueueNames,
    RedisSettings,
    SlackSettings,
    WorkerSettings,
)
from pudding.jobs import sources
from pudding.jobs.builds import STEPS, InstanceBuildJob
from pudding.jobs.init_script import GO_NAMES, InitScriptTemplateError
from pudding.jobs.instance_yml import MetaYMLError
from pudding.jobs.services import ServiceJob, Services
from pudding.jobs.sync import EC2Sync
from pudding.jobs.terminations import InstanceTerminationJob
from pudding.options import queue_options, slack_options
from pudding.sidekiq.cli import build_config, run, worker_options
from pudding.sidekiq.job import Job, Registry
from pudding.sidekiq.launcher import Launcher
from pudding.sidekiq.redis_connection import WORKER_POLICY

CRASH_SWITCH = "PUDDING_TEST_CRASH_AT"

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def queues_from_env(environ: Mapping[str, str], names: QueueNames) -> tuple[str, ...]:
    """The original's `QUEUES=name[:concurrency],…` (concurrency is `-c` here), else both."""
    listed = [entry.partition(":")[0].strip() for entry in environ.get("QUEUES", "").split(",")]
    return tuple(name for name in listed if name) or (
        names.instance_builds, names.instance_terminations
    )


def crash_switch(environ: Mapping[str, str]) -> Callable[[str], None] | None:
    """Tests only: `PUDDING_TEST_CRASH_AT=<step>` kills the process (SIGKILL) right after
    that build step, to prove that every step survives a crash."""
    step = environ.get(CRASH_SWITCH, "")
    if not step:
        return None
    if step not in STEPS:
        raise ConfigError(f"{CRASH_SWITCH} must be one of {', '.join(STEPS)}, not {step!r}")

    def checkpoint(done: str) -> None:
        if done == step:
            # Logs go out through a thread that SIGKILL cuts short: write directly.
            os.write(2, f"{CRASH_SWITCH}: killing this process after {step}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def job_factory(services: Services) -> Callable[[type[Job]], Job]:
    """pudding's jobs get the process's services; jobs loaded with -r are made as usual."""

    def create(job_class: type[Job]) -> Job:
        return job_class(services) if issubclass(job_class, ServiceJob) else job_class()

    return create


def sample_script_values() -> dict[str, Any]:
    return {**{name: f"sample-{name}" for name in GO_NAMES}, "count": 1}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pudding", prog_name="pudding-workers")
@worker_options
@click.option("-r", "--require", "modules", multiple=True, metavar="MODULE",
              help="Python module with more Job classes to run beside pudding's (repeatable).")
@click.option("--redis-url", envvar="PUDDING_REDIS_URL", default="",
              show_default="$REDIS_PROVIDER's var, $REDIS_URL, or redis://localhost:6379/0")
@queue_options
@click.option("-H", "--web-hostname", envvar="PUDDING_WEB_HOSTNAME",
              default="http://localhost:42151", show_default=True,
              help="The API's public base URL, with its scheme; instances fetch their "
                   "init script from it.")
@click.option("-K", "--aws-key", envvar="AWS_ACCESS_KEY_ID", default="")
@click.option("-S", "--aws-secret", envvar="AWS_SECRET_ACCESS_KEY", default="")
@click.option("-R", "--aws-region", envvar="AWS_DEFAULT_REGION", default="us-east-1",
              show_default=True)
@click.option("--instance-rsa", type=_FILE,
              help="File with the private key for the init script [default: $INSTANCE_RSA or "
                   "$PUDDING_INSTANCE_RSA (gzip + base64), else ./instance_rsa].")
@click.option("-Y", "--instance-yml", type=_FILE,
              help="The meta YML file [default: $INSTANCE_YML or $PUDDING_INSTANCE_YML, "
                   "gzip + base64].")
@click.option("-T", "--init-script-template", type=_FILE,
              help="The init-script template file [default: $INIT_SCRIPT_TEMPLATE or "
                   "$PUDDING_INIT_SCRIPT_TEMPLATE, gzip + base64].")
@click.option("--ssh-cidr", envvar="PUDDING_SSH_CIDR", default=WorkerSettings.ssh_cidr,
              show_default=True, help="Who may reach tcp/22 of the instances; '' for nobody.")
@click.option("-I", "--mini-worker-interval", envvar="PUDDING_MINI_WORKER_INTERVAL",
              type=float, default=WorkerSettings.mini_worker_interval, show_default=True,
              help="Seconds between EC2 syncs.")
@click.option("-E", "--instance-expiry", envvar="PUDDING_INSTANCE_EXPIRY", type=int,
              default=WorkerSettings.instance_expiry, show_default=True,
              help="Seconds cached instances live.")
@click.option("--image-expiry", envvar="PUDDING_IMAGE_EXPIRY", type=int,
              default=WorkerSettings.image_expiry, show_default=True,
              help="Seconds cached images live.")
@click.option("--init-script-expiry", envvar="PUDDING_TEMPORARY_INIT_EXPIRY", type=int,
              default=WorkerSettings.init_script_ttl, show_default=True,
              help="Seconds an init script and its password can be fetched.")
@slack_options
@click.option("--sentry-dsn", envvar=["PUDDING_SENTRY_DSN", "SENTRY_DSN"], default="",
              help="Report job failures to this Sentry project.")
@click.option("--debug/--no-debug", envvar="DEBUG", default=False, help="The same as -v.")
def main(
    modules: tuple[str, ...],
    redis_url: str,
    instance_builds_queue_name: str,
    instance_terminations_queue_name: str,
    web_hostname: str,
    aws_key: str,
    aws_secret: str,
    aws_region: str,
    instance_rsa: Path | None,
    instance_yml: Path | None,
    init_script_template: Path | None,
    ssh_cidr: str,
    mini_worker_interval: float,
    instance_expiry: int,
    image_expiry: int,
    init_script_expiry: int,
    slack_webhook_url: str,
    slack_team: str,
    slack_token: str,
    sentry_dsn: str,
    debug: bool,
    **engine_options: Any,
) -> None:
    """Build and terminate EC2 instances: run pudding's jobs and the EC2 sync."""
    environ = os.environ
    queues = QueueNames(instance_builds_queue_name, instance_terminations_queue_name)
    engine_options["verbose"] = engine_options["verbose"] or debug
    config = build_config(
        default_queues=queues_from_env(environ, queues), redis_url=redis_url, **engine_options
    )
    try:
        settings = WorkerSettings(
            web_hostname=web_hostname,
            instance_rsa=sources.read_text(
                instance_rsa, sources.INSTANCE_RSA_VARS, environ, sources.INSTANCE_RSA_FILE
            ) or "",
            init_script_template=sources.read_text(
                init_script_template, sources.INIT_SCRIPT_TEMPLATE_VARS, environ
            ) or "",
            meta_yml=sources.read_text(instance_yml, sources.INSTANCE_YML_VARS, environ) or "",
            redis=RedisSettings(url=config.redis_url, policy=WORKER_POLICY),
            queues=queues,
            slack=SlackSettings(webhook_url=slack_webhook_url, team=slack_team,
                                token=slack_token),
            aws_region=aws_region,
            aws_access_key_id=aws_key,
            aws_secret_access_key=aws_secret,
            ssh_cidr=ssh_cidr,
            mini_worker_interval=mini_worker_interval,
            instance_expiry=instance_expiry,
            image_expiry=image_expiry,
            init_script_ttl=init_script_expiry,
        )
        checkpoint = crash_switch(environ)
        ec2 = EC2.connect(aws_region, aws_key, aws_secret)
        services = Services.create(settings, ec2, checkpoint)
        services.init_script.render(sample_script_values())
    except (
        ConfigError, NoCredentials, InitScriptTemplateError, MetaYMLError
    ) as error:
        raise click.UsageError(str(error)) from None
    registry = Registry([InstanceBuildJob, InstanceTerminationJob], factory=job_factory(services))
    try:
        for module in modules:
            registry.register_module(importlib.import_module(module))
    except (ImportError, ValueError) as error:
        raise click.UsageError(f"cannot load job module: {error}") from None
    sync = EC2Sync(services)
    error_handlers = []
    if sentry_dsn:
        capture = pudding.sentry.start(sentry_dsn, "worker", (
            settings.instance_rsa, aws_secret, slack_token, slack_webhook_url,
        ))
        error_handlers.append(pudding.sentry.job_error_handler(capture))

    def setup(launcher: Launcher) -> None:
        launcher.error_handlers.extend(error_handlers)
        launcher.on("startup", sync.start)
        launcher.on("shutdown", sync.stop)

    run(config, registry, setup=setup)


if __name__ == "__main__":
    main()
