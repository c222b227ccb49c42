"""`python -m pudding.sidekiq`: the worker daemon, with Ruby Sidekiq's flags."""

from __future__ import annotations

import signal
import sys

import click
import structlog
from redis import RedisError

from pudding.sidekiq.config import (
    ConfigError,
    WorkerConfig,
    parse_queue,
    redact_url,
    redis_url_from_env,
)
from pudding.sidekiq.job import Registry
from pudding.sidekiq.launcher import Launcher
from pudding.sidekiq.log import configure_logging
from pudding.sidekiq.redis_connection import create_redis

SIGNALS = ("TERM", "INT", "TSTP", "TTIN")
# Threads beyond the processors that use Redis: heartbeat, scheduler, main.
EXTRA_CONNECTIONS = 4


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-q",
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME[,WEIGHT]",
    help="Queue to work on (repeatable): strict order without weights, weighted random with them.",
)
@click.option(
    "-c",
    "--concurrency",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processor threads.",
)
@click.option(
    "-t",
    "--timeout",
    default=25.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to finish running jobs on shutdown before they go back to their queues.",
)
@click.option(
    "-r",
    "--require",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Python module whose Job classes this worker runs (repeatable).",
)
@click.option("-g", "--tag", default="", help="Tag shown next to the process in the Web UI.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "--heartbeat-interval",
    envvar="SIDEKIQ_HEARTBEAT_INTERVAL",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds between heartbeats.",
)
@click.option(
    "--poll-interval-average",
    envvar="SIDEKIQ_POLL_INTERVAL_AVERAGE",
    type=float,
    default=None,
    help="Average seconds between scheduler polls [default: 5 s times the number of processes].",
)
@click.option(
    "--max-retries",
    envvar="SIDEKIQ_MAX_RETRIES",
    default=25,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retries of a job whose 'retry' is true.",
)
@click.option(
    "--orphan-check-interval",
    envvar="SIDEKIQ_ORPHAN_CHECK_INTERVAL",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds between checks for dead processes' jobs.",
)
@click.option(
    "--dead-process-timeout",
    envvar="SIDEKIQ_DEAD_PROCESS_TIMEOUT",
    default=60.0,
    show_default=True,
    type=float,
    help="A process that has not beaten for this long is dead.",
)
def main(
    queues: tuple[str, ...],
    concurrency: int,
    timeout: float,
    modules: tuple[str, ...],
    tag: str,
    verbose: bool,
    heartbeat_interval: float,
    poll_interval_average: float | None,
    max_retries: int,
    orphan_check_interval: float,
    dead_process_timeout: float,
) -> None:
    """Run Sidekiq jobs written in Python, from the Redis in REDIS_URL."""
    configure_logging(verbose, sys.stdout)
    try:
        config = WorkerConfig(
            redis_url=redis_url_from_env(),
            queues=tuple(parse_queue(q) for q in queues) or WorkerConfig.queues,
            concurrency=concurrency,
            timeout=timeout,
            tag=tag,
            job_modules=modules,
            verbose=verbose,
            heartbeat_interval=heartbeat_interval,
            poll_interval_average=poll_interval_average,
            max_retries=max_retries,
            orphan_check_interval=orphan_check_interval,
            dead_process_timeout=dead_process_timeout,
        ).validate()
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if not modules:
        raise click.UsageError("name the modules that define your Job classes with -r MODULE")
    try:
        registry = Registry.from_modules(modules)
    except ImportError as error:
        raise click.UsageError(f"cannot import a job module: {error}") from None
    if not registry.names():
        raise click.UsageError(f"no Job classes found in {', '.join(modules)}")

    log = structlog.get_logger("pudding.sidekiq")
    redis = create_redis(config.redis_url, concurrency + EXTRA_CONNECTIONS)
    try:
        redis.ping()
    except RedisError as error:
        log.error("cannot reach Redis", url=redact_url(config.redis_url), error=str(error))
        sys.exit(1)

    launcher = Launcher(config, redis, registry)
    for name in SIGNALS:
        signal.signal(
            getattr(signal, f"SIG{name}"), lambda _signum, _frame, name=name: launcher.signal(name)
        )
    launcher.run()
    launcher.run_until_stopped()
