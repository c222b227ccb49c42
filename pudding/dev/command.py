"""`pudding dev`: Redis, a local EC2 (moto), the API, the workers and the dashboard, in one
supervised process tree; Ctrl-C stops them all. The parts live in pudding.dev.stack, loaded
only when the command runs, so that the client's other commands start fast."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

DEFAULT_API_PORT = 42151
DEFAULT_DASHBOARD_PORT = 42152


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_API_PORT,
              show_default=True, help="The API's port; another free one if taken, 0 for any.")
@click.option("--dashboard-port", type=click.IntRange(0, 65535),
              default=DEFAULT_DASHBOARD_PORT, show_default=True,
              help="The Sidekiq dashboard's port; another free one if taken, 0 for any.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True,
              help="Run the Sidekiq dashboard (when Ruby Sidekiq is installed).")
@click.option("--role", "roles", multiple=True, default=("worker", "web"), show_default=True,
              help="Roles to make a demo image for (repeatable).")
# Short, so that a new instance is listed (and can be terminated) right away.
@click.option("--sync-interval", type=click.FloatRange(min=0.1), default=0.5,
              show_default=True, help="Seconds between the worker's EC2 syncs.")
@click.option("--fakeredis", is_flag=True,
              help="Use fakeredis even when redis-server is installed.")
def dev(
    port: int, dashboard_port: int, dashboard: bool, roles: tuple[str, ...],
    sync_interval: float, fakeredis: bool,
) -> None:
    """Run pudding locally: Redis, a fake EC2, the API, the workers, the dashboard."""
    from pudding.dev.stack import banner, dashboard_available, pick_port, start_stack
    from pudding.dev.supervisor import ChildExited, Interrupted, Supervisor

    supervisor = Supervisor(sys.stdout)
    supervisor.handle_signals()
    want_dashboard = dashboard and dashboard_available()
    if dashboard and not want_dashboard:
        supervisor.say("Ruby Sidekiq's dashboard is not installed (ruby-sidekiq): "
                       "running without it")
    status = 0
    with tempfile.TemporaryDirectory(prefix="pudding-dev-") as workdir:
        try:
            stack = start_stack(
                supervisor, Path(workdir), pick_port(port),
                pick_port(dashboard_port) if want_dashboard else None, roles, sync_interval,
                fakeredis,
            )
            supervisor.say(banner(stack))
            supervisor.watch()
        except Interrupted:
            pass
        except ChildExited as error:
            supervisor.say(f"pudding dev: {error}; stopping everything")
            status = 1
        finally:
            supervisor.stop_all()
    supervisor.say("pudding dev: stopped")
    sys.exit(status)
