"""The worker daemon as a process: crashes, signals, shutdown and bad configuration."""

import json
import signal
import subprocess
import sys
from collections import Counter

from pudding.sidekiq import Client
from tests.support import wait_for

from .conftest import ROOT


def test_kill_9_loses_no_in_flight_job(r, spawn_worker):
    client = Client(r)
    jids = [client.perform_async("SlowJob", 1) for _ in range(10)]
    doomed = spawn_worker("-c", "4")
    wait_for(lambda: r.llen("started") == 4, message="four jobs in flight", timeout=10)
    doomed.process.kill()
    doomed.wait(15)
    assert r.llen("ran") == 0
    spawn_worker(
        "-c", "5", env={"SIDEKIQ_DEAD_PROCESS_TIMEOUT": "1", "SIDEKIQ_ORPHAN_CHECK_INTERVAL": "0.5"}
    )
    wait_for(
        lambda: set(r.lrange("ran", 0, -1)) == set(jids), timeout=30, message="every job to run"
    )
    runs = Counter(r.lrange("ran", 0, -1))
    assert all(runs[jid] >= 1 for jid in jids)
    assert not r.keys("pysidekiq:inflight|*doomed*")


def test_term_puts_unfinished_jobs_back_at_the_head_of_their_queue(r, spawn_worker):
    client = Client(r)
    slow = [client.perform_async("SlowJob", 30) for _ in range(2)]
    originals = {json.loads(raw)["jid"]: raw for raw in r.lrange("queue:default", 0, -1)}
    waiting = client.perform_async("RecordJob")
    worker = spawn_worker("-c", "2", "-t", "1")
    wait_for(lambda: r.llen("started") == 2, message="both slow jobs running", timeout=10)
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0, worker.output()
    queue = r.lrange("queue:default", 0, -1)
    assert json.loads(queue[0])["jid"] == waiting
    assert sorted(queue[1:]) == sorted(originals[jid] for jid in slow), (
        "byte-identical, at the tail"
    )
    assert r.smembers("processes") == set()
    assert r.keys("pysidekiq:inflight|*") == []
    assert int(r.get("stat:failed")) == 2 and int(r.get("stat:processed")) == 2


def test_tstp_quiets_and_ttin_dumps_threads(r, spawn_worker):
    worker = spawn_worker("-c", "1")
    identity = wait_for(
        lambda: next(iter(r.smembers("processes")), None), message="a process", timeout=10
    )
    worker.signal(signal.SIGTTIN)
    worker.signal(signal.SIGTSTP)
    wait_for(lambda: r.hget(identity, "quiet") == "true", message="quiet", timeout=10)
    Client(r).perform_async("RecordJob")
    wait_for(lambda: '"thread"' in worker.output(), message="a thread dump", timeout=10)
    assert '"name": "heartbeat"' in worker.output()
    worker.signal(signal.SIGINT)
    assert worker.wait(10) == 0
    assert r.llen("queue:default") == 1 and r.llen("ran") == 0


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pudding.sidekiq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_configuration_exits_non_zero_with_a_clear_message(redis_url):
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    cases = [
        ((), "name the modules that define your Job classes with -r MODULE"),
        (("-r", "no.such.module"), "cannot import a job module"),
        (("-r", "json"), "no Job classes found in json"),
        (("-r", "tests.sidekiq.jobs", "-c", "0"), "Invalid value for '-c'"),
        (("-r", "tests.sidekiq.jobs", "-q", ","), "empty queue name"),
        (("-r", "tests.sidekiq.jobs", "-q", "a,x"), "queue weight must be a whole number"),
        (
            ("-r", "tests.sidekiq.jobs", "--heartbeat-interval", "5",
             "--dead-process-timeout", "9"),
            "at least two heartbeat intervals",
        ),
        (("-r", "tests.sidekiq.jobs", "--retry-for-mode", "9"), "Invalid value for '--retry-for"),
        (("-r", "tests.sidekiq.jobs", "--metrics", "6"), "Invalid value for '--metrics'"),
    ]
    for args, message in cases:
        result = run_cli(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_bad_redis_settings_exit_non_zero(redis_url):
    base = {"PATH": "/usr/bin:/bin"}
    wrong_scheme = run_cli(
        "-r", "tests.sidekiq.jobs", env={**base, "REDIS_URL": "http://x:secret@h/0"}
    )
    assert wrong_scheme.returncode == 2 and "must start with redis://" in wrong_scheme.stderr
    assert "secret" not in wrong_scheme.stderr
    provider = run_cli("-r", "tests.sidekiq.jobs", env={**base, "REDIS_PROVIDER": "MY_REDIS"})
    assert (
        provider.returncode == 2
        and "REDIS_PROVIDER names MY_REDIS, which is not set" in provider.stderr
    )
    down = run_cli(
        "-r", "tests.sidekiq.jobs", env={**base, "REDIS_URL": "redis://:pw@127.0.0.1:1/0"}
    )
    assert (
        down.returncode == 1 and "cannot reach Redis" in down.stdout and ":pw@" not in down.stdout
    )


def test_redis_provider_names_the_url_variable(r, redis_url, spawn_worker):
    spawn_worker(
        "-c",
        "1",
        env={
            "REDIS_PROVIDER": "MY_REDIS_URL",
            "MY_REDIS_URL": redis_url,
            "REDIS_URL": "redis://nowhere:1/0",
        },
    )
    jid = Client(r).perform_async("RecordJob")
    wait_for(lambda: r.lrange("ran", 0, -1) == [jid], message="the job to run", timeout=10)
