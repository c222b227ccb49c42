"""`pudding`: drive a pudding API from a terminal or a script, and run one locally (`dev`).

The API's URL and token come from `PUDDING_URL` and `PUDDING_AUTH_TOKEN` (or `--url`,
`--token`). Data goes to stdout (a table, or JSON with `--json`), progress and errors to
stderr, and the exit status says what happened (pudding.client.errors.ExitCode).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from pudding.client.api import PuddingAPI
from pudding.client.errors import APIError, CommandError, ExitCode
from pudding.client.tables import table
from pudding.dev.command import dev
from pudding.jobs.sources import compress, decompress

# What `--wait` waits for: the build reaching the state, or one past it.
REACHED = {"started": ("started", "finished", "failed"), "finished": ("finished", "failed")}
BUILD_COLUMNS = ("id", "state", "site", "env", "queue", "instance_type", "instance_id",
                 "created_at")
INSTANCE_COLUMNS = ("id", "name", "instance_type", "image_id", "ip", "site", "env", "queue",
                    "role", "launch_time")
IMAGE_COLUMNS = ("image_id", "role", "active", "state", "name")
BUILD_FIELDS = ("id", "state", "site", "env", "queue", "instance_type", "instance_id", "role",
                "ami", "count", "slack_channel", "name_template", "security_group_id", "error",
                "jid", "created_at", "updated_at")


class _Group(click.Group):
    """Turns a CommandError into its message on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError as error:
            click.echo(f"pudding: {error}", err=True)
            ctx.exit(error.exit_code)


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    timeout: float

    def api(self) -> PuddingAPI:
        if not self.token:
            raise CommandError(
                "no token: set PUDDING_AUTH_TOKEN (or pass --token)", ExitCode.USAGE
            )
        return PuddingAPI(self.url, self.token, self.timeout)


def _api(ctx: click.Context) -> PuddingAPI:
    return ctx.find_object(Target).api()


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pudding", prog_name="pudding")
@click.option("--url", envvar="PUDDING_URL", default="http://localhost:42151", show_default=True,
              help="The API's base URL [env: PUDDING_URL].")
@click.option("--token", envvar="PUDDING_AUTH_TOKEN", default="",
              help="The API's auth token [env: PUDDING_AUTH_TOKEN].")
@click.option("--timeout", envvar="PUDDING_TIMEOUT", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to wait for each API response.")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str, timeout: float) -> None:
    """Build, list and terminate EC2 instances through a pudding API.

    \b
    Exit status: 0 ok, 1 the build failed (or a value did not decode), 2 bad usage,
    3 not found, 4 bad or missing token, 5 request refused as invalid,
    6 API unreachable or failing (try again), 7 --wait timed out.
    """
    ctx.obj = Target(url, token, timeout)


def _progress(build: dict[str, Any]) -> str:
    line = f"build {build['id']}: {build['state']}"
    if build.get("instance_id"):
        line += f" (instance {build['instance_id']})"
    if build.get("error"):
        line += f": {build['error']}"
    return line


def wait_for_build(
    api: PuddingAPI,
    build: dict[str, Any],
    timeout: float,
    interval: float,
    say: Callable[[str], None],
    until: str = "finished",
) -> dict[str, Any]:
    """Poll the build until it is `until` (or failed), saying each change; rides out API
    trouble (a restart) until the timeout rather than giving up on the first error."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        line = _progress(build)
        if line != said:
            say(line)
            said = line
        if build["state"] in REACHED[until]:
            return build
        if time.monotonic() >= deadline:
            raise CommandError(
                f"build {build['id']} is still {build['state']} after {timeout:g} s",
                ExitCode.TIMED_OUT,
            )
        time.sleep(interval)
        try:
            build = api.build(build["id"])
        except APIError as error:
            if error.exit_code != ExitCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise
            say(f"({error}; trying again)")


def _finish(build: dict[str, Any]) -> None:
    if build["state"] == "failed":
        raise CommandError(f"build {build['id']} failed: {build.get('error') or '?'}",
                           ExitCode.FAILED)


wait_options = [
    click.option("--wait", is_flag=True,
                 help="Show progress until the build is finished or failed (exit 1 if failed)."),
    click.option("--wait-timeout", type=click.FloatRange(min=0), default=900.0,
                 show_default=True, help="Seconds --wait waits before exit status 7."),
    click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
                 help="Seconds between polls while waiting."),
]


def with_wait_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(wait_options):
        command = option(command)
    return command


@cli.command()
@click.option("--site", required=True, help="org or com.")
@click.option("--env", required=True, help="prod, staging or test.")
@click.option("--queue", required=True, help="The Travis queue the instance serves.")
@click.option("--instance-type", required=True, help="Like c3.2xlarge.")
@click.option("--count", type=int, default=1, show_default=True,
              help="VMs the instance runs (goes into its instance YML).")
@click.option("--role", default="", help="Image role [default: worker].")
@click.option("--ami", default="", help="Image id [default: the newest active one of the role].")
@click.option("--name-template", default="", help="Name tag template [default: the API's].")
@click.option("--slack-channel", default="", help="Where Slack hears of it.")
@click.option("--id", "build_id", default="",
              help="A UUID of yours: posting it again returns that build, no second one.")
@with_wait_options
@json_option
@click.pass_context
def build(
    ctx: click.Context,
    site: str,
    env: str,
    queue: str,
    instance_type: str,
    count: int,
    role: str,
    ami: str,
    name_template: str,
    slack_channel: str,
    build_id: str,
    wait: bool,
    wait_timeout: float,
    interval: float,
    as_json: bool,
) -> None:
    """Ask for an instance. Prints the build's id (its JSON with --json)."""
    api = _api(ctx)
    fields: dict[str, Any] = {
        "site": site, "env": env, "queue": queue, "instance_type": instance_type,
        "count": count, "role": role, "ami": ami, "name_template": name_template,
        "slack_channel": slack_channel,
        # Our own id, so that a POST tried again (after a 503) cannot make a second build.
        "id": build_id or str(uuid.uuid4()),
    }
    created = api.create_build({name: value for name, value in fields.items() if value != ""})
    if not as_json:
        # First, so a script (or a person) has the id while --wait is still waiting.
        click.echo(created["id"])
        sys.stdout.flush()
    if wait:
        created = wait_for_build(api, created, wait_timeout, interval,
                                 lambda line: click.echo(line, err=True))
    if as_json:
        _print_json(created)
    if wait:
        _finish(created)


@cli.command()
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@click.pass_context
def builds(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recent builds, newest first."""
    found = _api(ctx).builds(limit)
    if as_json:
        _print_json(found)
    else:
        click.echo(table(found, BUILD_COLUMNS))


@cli.command("build-status")
@click.argument("build_id")
@with_wait_options
@click.option("--until", type=click.Choice(sorted(REACHED)), default="finished",
              show_default=True, help="The state --wait waits for.")
@click.option("--field", type=click.Choice(BUILD_FIELDS), help="Print only this field.")
@json_option
@click.pass_context
def build_status(
    ctx: click.Context, build_id: str, wait: bool, wait_timeout: float, interval: float,
    until: str, field: str | None, as_json: bool,
) -> None:
    """Show one build and its history."""
    api = _api(ctx)
    found = api.build(build_id)
    if wait:
        found = wait_for_build(api, found, wait_timeout, interval,
                               lambda line: click.echo(line, err=True), until)
    if as_json:
        _print_json(found)
    elif field:
        click.echo(found.get(field, ""))
    else:
        width = max(map(len, BUILD_FIELDS))
        for name in BUILD_FIELDS:
            click.echo(f"{name.ljust(width)}  {found.get(name, '')}")
        click.echo("history")
        for entry in found.get("history", []):
            error = f"  {entry['error']}" if entry.get("error") else ""
            click.echo(f"  {entry['at']}  {entry['state']}{error}")
    if wait:
        _finish(found)


@cli.command()
@click.option("--env", default="")
@click.option("--site", default="")
@click.option("--role", default="")
@click.option("--queue", default="")
@json_option
@click.pass_context
def instances(
    ctx: click.Context, env: str, site: str, role: str, queue: str, as_json: bool
) -> None:
    """List the running instances (the worker's cache of EC2, refreshed every sync)."""
    found = _api(ctx).instances({"env": env, "site": site, "role": role, "queue": queue})
    if as_json:
        _print_json(found)
    else:
        click.echo(table(found, INSTANCE_COLUMNS))


@cli.command()
@click.option("--active/--inactive", default=None, help="Only active, or only inactive, images.")
@click.option("--role", default="")
@json_option
@click.pass_context
def images(ctx: click.Context, active: bool | None, role: str, as_json: bool) -> None:
    """List the images tagged with a role."""
    filters = {"role": role, "active": "" if active is None else str(active).lower()}
    found = _api(ctx).images(filters)
    if as_json:
        _print_json(found)
    else:
        click.echo(table(found, IMAGE_COLUMNS))


@cli.command()
@click.argument("instance_id")
@click.option("--slack-channel", default="", help="Where Slack hears of it.")
@click.pass_context
def terminate(ctx: click.Context, instance_id: str, slack_channel: str) -> None:
    """Terminate an instance pudding made (it must be in `pudding instances`)."""
    _api(ctx).terminate(instance_id, slack_channel)
    click.echo(f"terminating {instance_id}")


@cli.command("init-script")
@click.argument("build_id")
@click.pass_context
def init_script(ctx: click.Context, build_id: str) -> None:
    """Print a build's init script, byte for byte (until the instance reports back)."""
    click.echo(_api(ctx).init_script(build_id), nl=False)


@cli.group(cls=_Group)
def config() -> None:
    """Compressed env vars (gzip + base64), as the workers read INSTANCE_RSA & co."""


@config.command()
@click.argument("file", type=click.File("rb"))
def encode(file: Any) -> None:
    """Print FILE (- for stdin) compressed, for e.g. INIT_SCRIPT_TEMPLATE="$(pudding config
    encode init.sh)"."""
    try:
        text = file.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"{file.name} is not UTF-8 text: {error}", ExitCode.FAILED) from None
    click.echo(compress(text))


@config.command()
@click.argument("var")
def decode(var: str) -> None:
    """Print the text of the compressed env var VAR (- reads the value from stdin)."""
    value = sys.stdin.read() if var == "-" else os.environ.get(var, "")
    if not value:
        raise CommandError(f"{var} is not set", ExitCode.USAGE)
    try:
        text = decompress(value.strip())
    except ValueError as error:
        raise CommandError(f"{var} is {error}", ExitCode.FAILED) from None
    click.echo(text, nl=False)


cli.add_command(dev)


def main() -> None:
    cli(prog_name="pudding")
