"""`python -m pudding.web` (bin/pudding-server): the API under waitress.

Flags and env vars as in the Go original; an env var counts only when non-empty, and a
flag beats it. There is no default auth token: the server refuses to start without one.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from pudding.config import (
    ConfigError,
    QueueNames,
    RedisSettings,
    ServerLimits,
    SlackSettings,
    WebConfig,
    default_addr,
    parse_addr,
    parse_cpus,
)
from pudding.options import queue_options, slack_options
from pudding.sidekiq.config import redis_url_from_env
from pudding.sidekiq.log import configure_logging
from pudding.web.app import create_app
from pudding.web.server import GracefulServer, OncePerInterval

SWITCH_INTERVAL = 0.0005
QUEUE_WARNING_INTERVAL = 60.0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pudding", prog_name="pudding-server")
@click.option("-a", "--addr", envvar="PUDDING_ADDR", default=default_addr, show_default=":$PORT",
              help="Listen address, host:port or :port (default :$PORT, else :42151).")
@click.option("-r", "--redis-url", envvar="PUDDING_REDIS_URL", default="",
              show_default="$REDIS_PROVIDER's var, $REDIS_URL, or redis://localhost:6379/0")
@queue_options
@click.option("-A", "--auth-token", envvar="PUDDING_AUTH_TOKEN", default="",
              help="Required: clients send `Authorization: token <this>`.")
@slack_options
@click.option("--default-slack-channel", envvar="PUDDING_DEFAULT_SLACK_CHANNEL",
              default="#general", show_default=True)
@click.option("--sentry-dsn", envvar=["PUDDING_SENTRY_DSN", "SENTRY_DSN"], default="")
@click.option("--threads", envvar="PUDDING_WEB_THREADS", type=click.IntRange(1, 256),
              default=WebConfig.threads, show_default=True)
@click.option("--cpus", envvar="PUDDING_WEB_CPUS", default="",
              help="Run the server on these CPUs only, e.g. 1 or 0,2-3 (default: any). "
                   "One CPU serves the most requests per second: see the README.")
@click.option("--max-build-count", envvar="PUDDING_MAX_BUILD_COUNT", type=click.IntRange(1),
              default=WebConfig.max_build_count, show_default=True,
              help="Upper bound of an instance build's `count`.")
@click.option("--max-body-bytes", envvar="PUDDING_WEB_MAX_BODY_BYTES", type=click.IntRange(1024),
              default=WebConfig.max_body_bytes, show_default=True,
              help="Largest request body; larger ones get 413.")
@click.option("--connection-limit", envvar="PUDDING_WEB_CONNECTION_LIMIT",
              type=click.IntRange(10), default=ServerLimits.connection_limit, show_default=True,
              help="Open connections at most; beyond it new ones wait to be accepted.")
@click.option("--idle-timeout", envvar="PUDDING_WEB_IDLE_TIMEOUT", type=click.IntRange(1),
              default=ServerLimits.idle_timeout, show_default=True,
              help="Seconds before an idle keep-alive connection is closed; keep it longer "
                   "than the idle timeout of a load balancer in front.")
@click.option("--request-timeout", envvar="PUDDING_WEB_REQUEST_TIMEOUT", type=click.IntRange(1),
              default=ServerLimits.request_timeout, show_default=True,
              help="Seconds a request's headers and body may take to arrive.")
@click.option("--max-header-bytes", envvar="PUDDING_WEB_MAX_HEADER_BYTES",
              type=click.IntRange(1024), default=ServerLimits.max_header_bytes,
              show_default=True, help="Largest request line and headers; larger get 431.")
@click.option("--trusted-proxy", envvar="PUDDING_TRUSTED_PROXY", default="",
              help="Address of a reverse proxy whose X-Forwarded-For and X-Forwarded-Proto "
                   "are believed (or *); default: none, those headers are dropped.")
@click.option("--debug/--no-debug", envvar="DEBUG", default=False)
def main(
    addr: str,
    redis_url: str,
    instance_builds_queue_name: str,
    instance_terminations_queue_name: str,
    auth_token: str,
    slack_webhook_url: str,
    slack_team: str,
    slack_token: str,
    default_slack_channel: str,
    sentry_dsn: str,
    threads: int,
    cpus: str,
    max_build_count: int,
    max_body_bytes: int,
    connection_limit: int,
    idle_timeout: int,
    request_timeout: int,
    max_header_bytes: int,
    trusted_proxy: str,
    debug: bool,
) -> None:
    """Serve pudding's HTTP API."""
    try:
        host, port = parse_addr(addr)
        config = WebConfig(
            auth_token=auth_token,
            host=host,
            port=port,
            redis=RedisSettings(url=redis_url or redis_url_from_env()),
            queues=QueueNames(instance_builds_queue_name, instance_terminations_queue_name),
            slack=SlackSettings(webhook_url=slack_webhook_url, team=slack_team,
                                token=slack_token),
            default_slack_channel=default_slack_channel,
            sentry_dsn=sentry_dsn,
            debug=debug,
            threads=threads,
            cpus=parse_cpus(cpus, os.sched_getaffinity(0)),
            max_build_count=max_build_count,
            max_body_bytes=max_body_bytes,
            limits=ServerLimits(
                connection_limit=connection_limit,
                idle_timeout=idle_timeout,
                request_timeout=request_timeout,
                max_header_bytes=max_header_bytes,
                trusted_proxy=trusted_proxy,
            ),
        )
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if config.cpus:
        # Before any thread starts: threads inherit the CPUs of the thread that starts them.
        os.sched_setaffinity(0, config.cpus)
    configure_logging(debug)
    logging.getLogger("waitress.queue").addFilter(OncePerInterval(QUEUE_WARNING_INTERVAL))
    # Each request passes between waitress's threads several times; with the default 5 ms
    # GIL switch interval those hand-offs, not the work, make the tail latency.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        server = GracefulServer(
            lambda stop: create_app(config, shutdown=stop),
            config.host,
            config.port,
            threads=config.threads,
            max_request_body_size=config.max_body_bytes,
            limits=config.limits,
        )
    except OSError as error:
        click.echo(f"pudding-server: cannot listen on {addr}: {error}", err=True)
        sys.exit(1)
    server.run()


if __name__ == "__main__":
    main()
