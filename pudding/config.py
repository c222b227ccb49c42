"""Configuration: frozen dataclasses built once, from env vars and command-line flags.

Each process gets one config object (`WebConfig` for the web server); the parts that
several processes share (Redis, queue names, Slack) are their own dataclasses so a
worker config can reuse them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis

from pudding.jobs.names import INSTANCE_BUILDS_QUEUE, INSTANCE_TERMINATIONS_QUEUE
from pudding.sidekiq.config import DEFAULT_REDIS_URL, ConfigError
from pudding.sidekiq.redis_connection import RedisPolicy
from pudding.store.redis_client import ThreadLocalRedis

DEFAULT_PORT = 42151


# The API's: short timeouts, so that a request fails fast (503) when Redis is down.
WEB_POLICY = RedisPolicy(socket_timeout=1.0, connect_timeout=1.0)


@dataclass(frozen=True)
class RedisSettings:
    url: str = DEFAULT_REDIS_URL
    # A worker's stores take the engine's policy (WORKER_POLICY), so that jobs and the
    # engine see an outage alike.
    policy: RedisPolicy = WEB_POLICY

    def client(self) -> redis.Redis:
        """A client on the URL's database (unlike the Go original, which ignored it), with
        a connection of its own for each thread that uses it."""
        return ThreadLocalRedis.from_url(self.url, decode_responses=True, **self.policy.options())


@dataclass(frozen=True)
class QueueNames:
    """Sidekiq queue names of the two job kinds (see pudding.jobs.names)."""

    instance_builds: str = INSTANCE_BUILDS_QUEUE
    instance_terminations: str = INSTANCE_TERMINATIONS_QUEUE


@dataclass(frozen=True)
class SlackSettings:
    """Where notifications go: an incoming-webhook URL, or the original's team + token."""

    webhook_url: str = ""
    team: str = ""
    token: str = ""
    username: str = "travisbot"
    icon_emoji: str = ":travis:"
    timeout: float = 5.0

    def endpoint(self) -> str | None:
        if self.webhook_url:
            return self.webhook_url
        if self.team and self.token:
            return f"https://{self.team}.slack.com/services/hooks/hubot?token={self.token}"
        return None


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold of the server: connections, time, header bytes.

    waitress reads every socket on one event loop, so an idle or slow connection costs
    a file descriptor and a little memory, not a thread; these bound how many there
    may be and how long each may take.
    """

    # Open connections; beyond it waitress stops accepting until some close.
    connection_limit: int = 1000
    # A keep-alive connection with no request in flight is closed after this long.
    # Longer than the 60 s idle timeout of common load balancers (AWS ALB), which
    # must close first, or they may send a request into a closing connection.
    idle_timeout: int = 75
    # A request's headers and body must arrive within this long of its first byte.
    request_timeout: int = 10
    max_header_bytes: int = 16 * 1024
    # The peer whose X-Forwarded-For and X-Forwarded-Proto are believed (a reverse
    # proxy's address, or "*"); empty: none, those headers are dropped.
    trusted_proxy: str = ""

    def __post_init__(self) -> None:
        if self.connection_limit < 10:
            raise ConfigError("the connection limit must be at least 10")
        if self.idle_timeout < 1 or self.request_timeout < 1:
            raise ConfigError("the idle and request timeouts must be at least 1 second")
        if self.max_header_bytes < 1024:
            raise ConfigError("the header size limit must be at least 1024 bytes")


@dataclass(frozen=True)
class WebConfig:
    auth_token: str
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    redis: RedisSettings = field(default_factory=RedisSettings)
    queues: QueueNames = field(default_factory=QueueNames)
    slack: SlackSettings = field(default_factory=SlackSettings)
    default_slack_channel: str = "#general"
    sentry_dsn: str = ""
    debug: bool = False
    threads: int = 8
    # Empty: wherever the kernel puts them. See parse_cpus.
    cpus: frozenset[int] = frozenset()
    max_body_bytes: int = 64 * 1024
    max_build_count: int = 100
    limits: ServerLimits = field(default_factory=ServerLimits)

    def __post_init__(self) -> None:
        if not self.auth_token or not self.auth_token.strip():
            raise ConfigError(
                "no auth token: set PUDDING_AUTH_TOKEN or pass --auth-token "
                "(there is no default; pick a long random string)"
            )
        if self.max_build_count < 1:
            raise ConfigError("the maximum build count must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigError("the request body limit must be at least 1024 bytes")


_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


@dataclass(frozen=True)
class WorkerSettings:
    """The pudding worker's own settings (the job engine's are `pudding.sidekiq.WorkerConfig`).

    `init_script_template` and `meta_yml` are the texts, already read from their file or
    compressed env var; `meta_yml` may be empty (no instance YML is generated then).
    """

    web_hostname: str
    instance_rsa: str = field(repr=False)
    init_script_template: str = field(default="", repr=False)
    meta_yml: str = field(default="", repr=False)
    redis: RedisSettings = field(default_factory=RedisSettings)
    queues: QueueNames = field(default_factory=QueueNames)
    slack: SlackSettings = field(default_factory=SlackSettings)
    aws_region: str = "us-east-1"
    aws_access_key_id: str = ""
    aws_secret_access_key: str = field(default="", repr=False)
    # Who may reach the instances' SSH port; empty: nobody (no ingress rule at all).
    ssh_cidr: str = "0.0.0.0/0"
    mini_worker_interval: float = 30.0
    instance_expiry: int = 90
    image_expiry: int = 90
    init_script_ttl: int = 600

    def __post_init__(self) -> None:
        url = urlsplit(self.web_hostname)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"the web hostname must be the API's public URL with its scheme, like "
                f"https://pudding.example.com, not {self.web_hostname!r}"
            )
        if url.username or url.password or url.query or url.fragment:
            raise ConfigError("the web hostname must not carry credentials, a query or a fragment")
        if not self.instance_rsa.strip():
            raise ConfigError(
                "missing instance RSA key: pass --instance-rsa FILE, set INSTANCE_RSA or "
                "PUDDING_INSTANCE_RSA (gzip + base64), or put a file instance_rsa in the "
                "working directory"
            )
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ConfigError("give both the AWS access key id and its secret, or neither")
        if not _AWS_REGION.fullmatch(self.aws_region):
            raise ConfigError(f"{self.aws_region!r} is not an AWS region name like us-east-1")
        if self.ssh_cidr:
            try:
                ipaddress.ip_network(self.ssh_cidr)
            except ValueError as error:
                raise ConfigError(f"bad SSH CIDR {self.ssh_cidr!r}: {error}") from None
        if self.mini_worker_interval <= 0:
            raise ConfigError("the mini-worker interval must be more than 0 seconds")
        if min(self.instance_expiry, self.image_expiry) <= self.mini_worker_interval:
            raise ConfigError(
                "the instance and image expiries must be longer than the mini-worker "
                "interval, or the cache empties between two syncs"
            )
        if self.init_script_ttl < 60:
            raise ConfigError("the init-script expiry must be at least 60 seconds")


def default_addr(environ: Mapping[str, str] = os.environ) -> str:
    return f":{environ.get('PORT') or DEFAULT_PORT}"


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port`, `:port` (all interfaces) or `[v6]:port` → (host, port)."""
    parts = urlsplit(f"//{addr}")
    try:
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"bad listen address {addr!r}: {error}") from None
    if port is None:
        raise ConfigError(f"bad listen address {addr!r}: expected host:port or :port")
    return parts.hostname or "0.0.0.0", port


def parse_cpus(text: str, allowed: Collection[int]) -> frozenset[int]:
    """A CPU list as taskset(1) writes it ("1", "0,2", "0-3"); each CPU must be one of
    `allowed` (those this process may run on). Empty text: no CPUs, meaning no pinning.

    Why pin: a CPython process runs one thread at a time, and when waitress's threads hand
    the GIL to each other across CPUs, the hand-offs cost more than the requests.
    """
    cpus: set[int] = set()
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ConfigError(f"bad CPU list {text!r}: expected numbers like 1 or 0,2-3") from None
        if low > high:
            raise ConfigError(f"bad CPU list {text!r}: {part} runs backwards")
        cpus.update(range(low, high + 1))
    if refused := sorted(cpus - set(allowed)):
        raise ConfigError(
            f"CPU {refused[0]} is not one this process may use "
            f"(it may use {', '.join(map(str, sorted(allowed)))})"
        )
    return frozenset(cpus)
