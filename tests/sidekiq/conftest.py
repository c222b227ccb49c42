"""Fixtures for the engine: an in-process worker, and worker subprocesses."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pudding.sidekiq.config import QueueSpec, WorkerConfig
from pudding.sidekiq.job import Job, Registry
from pudding.sidekiq.launcher import Launcher
from pudding.sidekiq.redis_connection import create_redis
from tests.support import LoggedProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_config(redis_url: str) -> WorkerConfig:
    return WorkerConfig(
        redis_url=redis_url,
        queues=(QueueSpec("default"),),
        concurrency=2,
        timeout=2,
        heartbeat_interval=0.2,
        poll_interval_average=0.2,
        orphan_check_interval=0.5,
    )


@pytest.fixture
def start_worker(worker_config: WorkerConfig) -> Iterator[Callable[..., Launcher]]:
    """Start an in-process worker running the given job classes; stopped at teardown."""
    launchers: list[Launcher] = []

    def start(*jobs: type[Job], **overrides: object) -> Launcher:
        config = replace(worker_config, **overrides)
        launcher = Launcher(config, create_redis(config.redis_url, 20), Registry(jobs))
        launcher.run()
        launchers.append(launcher)
        return launcher

    yield start
    for launcher in launchers:
        launcher.stop()


class WorkerProcess(LoggedProcess):
    """`python -m pudding.sidekiq` as a child process, its log in a file."""

    def __init__(
        self, redis_url: str, log_path: Path, *args: str, env: dict[str, str] | None = None
    ):
        super().__init__(
            [sys.executable, "-m", "pudding.sidekiq", "-r", "tests.sidekiq.jobs", *args],
            {
                **os.environ,
                "REDIS_URL": redis_url,
                "SIDEKIQ_HEARTBEAT_INTERVAL": "0.2",
                "SIDEKIQ_POLL_INTERVAL_AVERAGE": "0.2",
                **(env or {}),
            },
            log_path,
            ROOT,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(redis_url, tmp_path / f"worker-{len(workers)}.log", *args, env=env)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        worker.stop(grace=0)
