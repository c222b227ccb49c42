"""Fixtures that drive real Ruby Sidekiq 6.4.1 (snippets, `sidekiq`, `rackup`) and our worker."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from harness import (
    CONFIG_RU,
    INTEROP_DIR,
    JOBS_RB,
    ManagedProcess,
    RedisServer,
    Ruby,
    SidekiqProcess,
    WebClient,
    free_port,
    identity_of,
    wait_until,
)

PROCESSES = pytest.StashKey[list[ManagedProcess]]()

# Shorter than the engine's 5 s defaults, so that beats, signals and polls show up fast.
PUDDING_TEST_ENV = {"SIDEKIQ_HEARTBEAT_INTERVAL": "0.5", "SIDEKIQ_POLL_INTERVAL_AVERAGE": "0.5"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Attach the log of every process the test started to its failure report."""
    report: pytest.TestReport = yield
    if report.failed:
        for process in item.stash.get(PROCESSES, []):
            title = f"log of {process.name} (pid {process.pid})"
            report.sections.append((title, process.output()))
    return report


class Supervisor:
    """Starts subprocesses for one test and stops every one of them at teardown."""

    def __init__(self, tmp_path: Path, reported: list[ManagedProcess]) -> None:
        self.tmp_path = tmp_path
        self.reported = reported
        self.started: list[ManagedProcess] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> ManagedProcess:
        log = self.tmp_path / f"{name}-{len(self.started)}.log"
        process = ManagedProcess(name, argv, {**os.environ, **env}, INTEROP_DIR, log)
        self.started.append(process)
        self.reported.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.fixture
def supervisor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path, request.node.stash.setdefault(PROCESSES, []))
    yield sup
    sup.stop_all()


@pytest.fixture
def ruby(redis_url: str, tmp_path: Path) -> Ruby:
    """`ruby(code, **args)`: run Ruby with sidekiq/api on the test's Redis, get JSON back."""
    workdir = tmp_path / "ruby"
    workdir.mkdir()
    return Ruby(redis_url, workdir)


def _wait_registered(r: redis.Redis, process: ManagedProcess) -> SidekiqProcess:
    identity = wait_until(
        lambda: identity_of(r, process.pid), 30, f"{process.name} to register in `processes`",
        alive=[process],
    )
    return SidekiqProcess(process, identity)


@pytest.fixture
def ruby_sidekiq(
    supervisor: Supervisor, redis_url: str, r: redis.Redis
) -> Callable[..., SidekiqProcess]:
    """Start Ruby's own `sidekiq -r jobs.rb` on the given queues; it is stopped at teardown."""

    def start(queues: Sequence[str] = ("rb",), concurrency: int = 2) -> SidekiqProcess:
        argv = ["sidekiq", "-r", str(JOBS_RB), "-c", str(concurrency), "-t", "3"]
        for queue in queues:
            argv += ["-q", queue]
        process = supervisor.start("ruby-sidekiq", argv, {"REDIS_URL": redis_url})
        return _wait_registered(r, process)

    return start


@pytest.fixture
def pudding_worker(
    supervisor: Supervisor, redis_url: str, r: redis.Redis
) -> Callable[..., SidekiqProcess]:
    """Start our `python -m pudding.sidekiq -r pyjobs`; it is stopped at teardown.

    `extra_args` go after the fixed flags, e.g. `["-r", "pyjobs_later"]` for more job classes.
    """

    def start(
        queues: Sequence[str] = ("py",),
        concurrency: int = 2,
        timeout: int = 3,
        tag: str = "interop",
        extra_args: Sequence[str] = (),
    ) -> SidekiqProcess:
        argv = [sys.executable, "-m", "pudding.sidekiq", "-r", "pyjobs",
                "-c", str(concurrency), "-t", str(timeout), "-g", tag, "-v", *extra_args]
        for queue in queues:
            argv += ["-q", queue]
        pythonpath = os.pathsep.join(filter(None, [str(INTEROP_DIR), os.environ.get("PYTHONPATH")]))
        env = {"REDIS_URL": redis_url, "PYTHONPATH": pythonpath, **PUDDING_TEST_ENV}
        process = supervisor.start("pudding-worker", argv, env)
        return _wait_registered(r, process)

    return start


@dataclass
class WebServer:
    process: ManagedProcess
    base_url: str


@pytest.fixture(scope="session")
def web_server(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    """`rackup config.ru` (Sidekiq::Web behind a cookie session) on db 0 of the test Redis."""
    port = free_port()
    env = {"REDIS_URL": redis_server.url(0), "SESSION_SECRET": os.urandom(32).hex()}
    log = tmp_path_factory.mktemp("rackup") / "rackup.log"
    process = ManagedProcess(
        "rackup", ["rackup", "-s", "webrick", "-o", "127.0.0.1", "-p", str(port), str(CONFIG_RU)],
        {**os.environ, **env}, INTEROP_DIR, log,
    )
    base_url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(base_url + "/stats", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_until(answers, 30, "rackup to serve Sidekiq::Web", interval=0.1, alive=[process])
        yield WebServer(process, base_url)
    finally:
        process.stop()


@pytest.fixture
def web(request: pytest.FixtureRequest, web_server: WebServer, redis_url: str) -> WebClient:
    """A fresh browser session on Sidekiq::Web, whose log joins the test's failure report."""
    request.node.stash.setdefault(PROCESSES, []).append(web_server.process)
    return WebClient(web_server.base_url)

