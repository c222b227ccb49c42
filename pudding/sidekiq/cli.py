"""`python -m pudding.sidekiq`: the worker daemon, with Ruby Sidekiq's flags.

Programs that embed the engine (pudding's own `bin/pudding-workers`) reuse
`worker_options`, `build_config` and `run` to offer the same flags and behaviour.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import structlog
from redis import Redis, RedisError

from pudding.sidekiq.config import (
    METRICS_CHOICES,
    RETRY_FOR_MODES,
    ConfigError,
    QueueSpec,
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
STARTUP_WAIT = 5.0
# Threads beyond the processors that use Redis: heartbeat, scheduler, main.
EXTRA_CONNECTIONS = 4

_OPTIONS = [
    click.option(
        "-q",
        "--queue",
        "queues",
        multiple=True,
        metavar="NAME[,WEIGHT]",
        help="Queue to work on (repeatable): strict order without weights, "
        "weighted random with them.",
    ),
    click.option(
        "-c",
        "--concurrency",
        default=10,
        show_default=True,
        type=click.IntRange(min=1),
        help="Processor threads.",
    ),
    click.option(
        "-t",
        "--timeout",
        default=25.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="Seconds to finish running jobs on shutdown before they go back to their queues.",
    ),
    click.option("-g", "--tag", default="", help="Tag shown next to the process in the Web UI."),
    click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
    click.option(
        "--heartbeat-interval",
        envvar="SIDEKIQ_HEARTBEAT_INTERVAL",
        default=5.0,
        show_default=True,
        type=float,
        help="Seconds between heartbeats.",
    ),
    click.option(
        "--poll-interval-average",
        envvar="SIDEKIQ_POLL_INTERVAL_AVERAGE",
        type=float,
        default=None,
        help="Average seconds between scheduler polls "
        "[default: 5 s times the number of processes].",
    ),
    click.option(
        "--max-retries",
        envvar="SIDEKIQ_MAX_RETRIES",
        default=25,
        show_default=True,
        type=click.IntRange(min=0),
        help="Retries of a job whose 'retry' is true.",
    ),
    click.option(
        "--orphan-check-interval",
        envvar="SIDEKIQ_ORPHAN_CHECK_INTERVAL",
        default=60.0,
        show_default=True,
        type=float,
        help="Seconds between checks for dead processes' jobs.",
    ),
    click.option(
        "--dead-process-timeout",
        envvar="SIDEKIQ_DEAD_PROCESS_TIMEOUT",
        default=60.0,
        show_default=True,
        type=float,
        help="A process that has not beaten for this long is dead.",
    ),
    click.option(
        "--retry-for-mode",
        envvar="SIDEKIQ_RETRY_FOR_MODE",
        default="7",
        show_default=True,
        type=click.Choice(RETRY_FOR_MODES),
        help="A job's `retry_for` as Sidekiq 7.1.3+ reads it (the retry count and the "
        "deadline both end retries) or as 8.1 does (the deadline alone).",
    ),
    click.option(
        "--metrics",
        envvar="SIDEKIQ_METRICS",
        default="both",
        show_default=True,
        type=click.Choice(METRICS_CHOICES),
        help="Execution metrics for the Metrics tab of Sidekiq 7, 8, both, or off.",
    ),
]


def worker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The engine's flags, for any click command that runs a worker."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def build_config(
    default_queues: tuple[str, ...] = ("default",), redis_url: str = "", **options: Any
) -> WorkerConfig:
    """The worker's config from `worker_options` values and the environment; an empty
    `redis_url` means the one the environment gives (see `redis_url_from_env`)."""
    try:
        queues = tuple(parse_queue(q) for q in options.pop("queues")) or tuple(
            QueueSpec(name) for name in default_queues
        )
        return WorkerConfig(
            redis_url=redis_url or redis_url_from_env(), queues=queues, **options
        ).validate()
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def run(
    config: WorkerConfig, registry: Registry, setup: Callable[[Launcher], None] | None = None
) -> None:
    """Run a worker until TERM or INT (or the Web's Stop); `setup` may add lifecycle hooks."""
    configure_logging(config.verbose, sys.stdout)
    if not registry.names():
        raise click.UsageError("no Job classes to run")
    log = structlog.get_logger("pudding.sidekiq")
    redis = create_redis(config.redis_url, config.concurrency + EXTRA_CONNECTIONS)
    error = _wait_for(redis)
    if error is not None:
        log.error("cannot reach Redis", url=redact_url(config.redis_url), error=str(error))
        sys.exit(1)
    launcher = Launcher(config, redis, registry)
    if setup is not None:
        setup(launcher)
    for name in SIGNALS:
        signal.signal(
            getattr(signal, f"SIG{name}"),
            lambda _signum, _frame, name=name: launcher.signal(name),
        )
    launcher.run()
    sys.exit(launcher.run_until_stopped())


def _wait_for(redis: Redis) -> RedisError | None:
    """Ping until Redis answers (a restart or a failover takes a moment), for a while: a
    Redis that stays away is a setting to fix, and the exit says so."""
    deadline = time.monotonic() + STARTUP_WAIT
    while True:
        try:
            redis.ping()
            return None
        except RedisError as error:
            if time.monotonic() >= deadline:
                return error
            time.sleep(0.2)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@worker_options
@click.option(
    "-r",
    "--require",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Python module whose Job classes this worker runs (repeatable).",
)
def main(modules: tuple[str, ...], **options: Any) -> None:
    """Run Sidekiq jobs written in Python, from the Redis in REDIS_URL."""
    config = build_config(job_modules=modules, **options)
    if not modules:
        raise click.UsageError("name the modules that define your Job classes with -r MODULE")
    try:
        registry = Registry.from_modules(modules)
    except ImportError as error:
        raise click.UsageError(f"cannot import a job module: {error}") from None
    if not registry.names():
        raise click.UsageError(f"no Job classes found in {', '.join(modules)}")
    run(config, registry)
