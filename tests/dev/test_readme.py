"""The README's promises: its quickstart runs as written, and its Settings table names every
flag and env var the commands read."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import click

from pudding.jobs.__main__ import main as workers_main
from pudding.web.__main__ import main as web_main
from tests.support import wait_for

from .conftest import BIN, ROOT, Proc, base_env

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def test_the_readme_starts_with_make_run_and_make_test():
    first = shell_blocks(README)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make run", "make test"]


def test_the_quickstart_runs_as_written(tmp_path):
    start_block, commands = shell_blocks(section("Quickstart"))
    assert start_block.strip() == "make run"
    run = Proc(["sh", "-c", start_block], base_env(), tmp_path / "make-run.log")
    try:
        export = wait_for(
            lambda: re.search(r"^ *(export PUDDING_URL=\S+ PUDDING_AUTH_TOKEN=\S+)$",
                              run.output(), re.MULTILINE),
            180, "make run's banner",
        )
        # The second terminal: the pasted export line, then the commands, stopping at the
        # first that fails.
        script = f"set -e -x\n{export[1]}\n{commands}"
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=base_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{done.stderr}\n{run.output()}"
        out = done.stdout
        assert re.search(r"^ami-\S+ +worker +true", out, re.MULTILINE), out
        assert "state              finished" in out
        assert re.search(r"^terminating i-[0-9a-f]+$", out, re.MULTILINE), out

        run.descendants()
        os.killpg(run.process.pid, signal.SIGINT)  # Ctrl-C in the first terminal
        run.process.wait(40)
        assert run.leftovers() == []
        assert "pudding dev: stopped" in run.output()
    finally:
        run.stop()


def test_every_setting_is_in_the_settings_table():
    table = section("Settings")
    documented = set(re.findall(r"`([^`]+)`", table))
    words = " ".join(documented)
    for command in (web_main, workers_main):
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in ("help", "version"):
                continue
            flag = max(param.opts, key=len)
            assert flag in words, f"{command.name}: {flag}"
            envvars = param.envvar if isinstance(param.envvar, list) else [param.envvar]
            for envvar in filter(None, envvars):
                assert envvar in words, f"{command.name}: {envvar}"
    dashboard = (BIN / "pudding-sidekiq-web").read_text() + (BIN / "sidekiq-web.ru").read_text()
    for envvar in set(re.findall(r"\b(SIDEKIQ_WEB_\w+|PUDDING_\w+|REDIS_\w+)", dashboard)):
        assert envvar in words, f"pudding-sidekiq-web: {envvar}"
