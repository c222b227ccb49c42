"""The worker's settings: one typed object, built once from flags and the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
RETRY_FOR_MODES = ("7", "8")
# `--metrics` choices: the Sidekiq versions whose Metrics-tab keys a worker writes.
METRICS_VERSIONS = {"both": ("7", "8"), "7": ("7",), "8": ("8",), "off": ()}
METRICS_CHOICES = tuple(METRICS_VERSIONS)


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class QueueSpec:
    name: str
    weight: int = 0


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str = DEFAULT_REDIS_URL
    queues: tuple[QueueSpec, ...] = (QueueSpec("default"),)
    concurrency: int = 10
    timeout: float = 25.0
    tag: str = ""
    labels: tuple[str, ...] = ()
    job_modules: tuple[str, ...] = ()
    verbose: bool = False
    hostname: str = field(default_factory=lambda: os.environ.get("DYNO") or socket.gethostname())
    heartbeat_interval: float = 5.0
    # None: scale with the number of processes, as Sidekiq does.
    poll_interval_average: float | None = None
    average_scheduled_poll_interval: float = 5.0
    max_retries: int = 25
    dead_max_jobs: int = 10_000
    dead_timeout: float = 180 * 24 * 3600
    # Reliable fetch: in-flight lists of a process whose heartbeat has expired go
    # back to their queues; a job recovered more often than this is a poison pill.
    orphan_check_interval: float = 60.0
    dead_process_timeout: float = 60.0
    poison_pill_limit: int = 3
    key_prefix: str = "pysidekiq"
    # `retry_for` as Sidekiq 7.1.3+ reads it (the count and the time limit both apply)
    # or as 8.1 does (only the time limit, when the job has one).
    retry_for_mode: str = "7"
    # Which Sidekiq versions' Metrics tab to write for: "7", "8", "both" or "off".
    metrics: str = "both"

    @property
    def metrics_versions(self) -> tuple[str, ...]:
        return METRICS_VERSIONS[self.metrics]

    @property
    def strict(self) -> bool:
        """Strict queue order unless a weight was given, as `sidekiq -q name,weight`."""
        return not any(queue.weight > 0 for queue in self.queues)

    def validate(self) -> WorkerConfig:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.timeout < 0:
            raise ConfigError(f"timeout must not be negative, not {self.timeout}")
        if not self.queues:
            raise ConfigError("no queues to work on")
        if self.heartbeat_interval <= 0 or self.heartbeat_interval >= 60:
            raise ConfigError("the heartbeat interval must be between 0 and 60 seconds")
        if self.dead_process_timeout < 2 * self.heartbeat_interval:
            raise ConfigError(
                "the dead-process timeout must be at least two heartbeat intervals, "
                "or live processes would count as dead"
            )
        if self.retry_for_mode not in RETRY_FOR_MODES:
            raise ConfigError(f"retry_for mode must be 7 or 8, not {self.retry_for_mode!r}")
        if self.metrics not in METRICS_CHOICES:
            raise ConfigError(f"metrics must be one of {', '.join(METRICS_CHOICES)}")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"the Redis URL must start with redis://, rediss:// or unix://, "
                f"not {redact_url(self.redis_url)!r}"
            )
        return self


def parse_queue(text: str) -> QueueSpec:
    """`name` or `name,weight`, as Sidekiq's `-q`."""
    name, _, weight = text.partition(",")
    name = name.strip()
    if not name:
        raise ConfigError(f"empty queue name in {text!r}")
    if not weight:
        return QueueSpec(name)
    try:
        return QueueSpec(name, int(weight))
    except ValueError:
        raise ConfigError(f"queue weight must be a whole number in {text!r}") from None


def redis_url_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """REDIS_PROVIDER names the variable holding the URL (Heroku style), else REDIS_URL."""
    provider = environ.get("REDIS_PROVIDER")
    if provider:
        if "://" in provider:
            raise ConfigError(
                "REDIS_PROVIDER must name the variable that holds the Redis URL "
                "(e.g. REDISGREEN_URL), not hold the URL itself"
            )
        url = environ.get(provider)
        if not url:
            raise ConfigError(f"REDIS_PROVIDER names {provider}, which is not set")
        return url
    return environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in userinfo else url
