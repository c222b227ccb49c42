"""The Procfile under honcho (web, worker, sidekiq-web) against a configured Redis, and the
dashboard's own settings (basic auth)."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pudding.jobs.sources import compress
from tests.support import free_port, wait_for

from .conftest import BIN, INIT_SCRIPT, INSTANCE_RSA, ROOT, TOKEN, answers, base_env, http

HONCHO = Path(sys.executable).with_name("honcho")


def free_port_run(step: int = 100, count: int = 3) -> int:
    """A port P with P, P + step, … all free (honcho gives each process P + n·step)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + step * count > 65535:
            continue
        try:
            for n in range(count):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", base + n * step))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def test_honcho_runs_web_worker_and_dashboard(start, tmp_path, redis_url, r, moto):
    port = free_port_run()
    web_url = f"http://127.0.0.1:{port}"
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{name}={value}" for name, value in {
        "REDIS_URL": redis_url,
        "PUDDING_AUTH_TOKEN": TOKEN,
        "PUDDING_WEB_HOSTNAME": web_url,
        "INSTANCE_RSA": compress(INSTANCE_RSA),
        "INIT_SCRIPT_TEMPLATE": compress(INIT_SCRIPT),
        "SIDEKIQ_HEARTBEAT_INTERVAL": "0.5",
        **moto.env(),
    }.items()) + "\n")
    honcho = start("honcho", [str(HONCHO), "-f", str(ROOT / "Procfile"), "-e", str(env_file),
                              "start", "-p", str(port)], base_env())

    def up() -> bool:
        assert honcho.alive(), honcho.output()
        return answers(f"{web_url}/", b"ohai")

    wait_for(up, 60, "web")
    identity = wait_for(lambda: r.smembers("processes"), 30, "the worker's heartbeat").pop()
    info = json.loads(r.hget(identity, "info"))
    assert info["queues"] == ["instance-builds", "instance-terminations"]

    status, _ = http(f"{web_url}/instance-builds", "POST", json.dumps({"instance_builds": {
        "site": "org", "env": "test", "queue": "docker", "instance_type": "c3.large",
        "count": 1}}).encode(), {"Authorization": f"token {TOKEN}"})
    assert status == 202

    dashboard = f"http://127.0.0.1:{port + 200}"
    wait_for(lambda: answers(f"{dashboard}/queues", b"instance-builds"), 60,
             f"the dashboard's queues\n{honcho.output()}")
    assert answers(f"{dashboard}/busy", info["hostname"].encode())
    assert answers(f"{dashboard}/busy", b"instance-terminations")

    tree = honcho.descendants()
    assert len(tree) >= 4, [p.cmdline() for p in tree]
    honcho.process.send_signal(signal.SIGTERM)
    honcho.process.wait(30)
    assert honcho.leftovers() == []
    wait_for(lambda: not r.smembers("processes"), 10, "the worker to unregister")


@pytest.fixture
def dashboard(start, redis_url):
    def run(**env: str):
        port = free_port()
        proc = start("dashboard", [str(BIN / "pudding-sidekiq-web"), "-p", str(port)],
                     {**base_env(), "PUDDING_REDIS_URL": redis_url, **env})
        return proc, f"http://127.0.0.1:{port}"

    return run


def test_the_dashboard_asks_for_basic_auth_when_configured(dashboard, r):
    r.sadd("queues", "instance-builds")
    proc, url = dashboard(SIDEKIQ_WEB_AUTH_BASIC="ops:s3cret:with-colon")

    def up() -> bool:
        assert proc.alive(), proc.output()
        try:
            return http(f"{url}/queues")[0] == 401
        except OSError:
            return False

    wait_for(up, 30, "the dashboard")
    good = base64.b64encode(b"ops:s3cret:with-colon").decode()
    bad = base64.b64encode(b"ops:s3cret").decode()
    assert http(f"{url}/queues", headers={"Authorization": f"Basic {bad}"})[0] == 401
    status, page = http(f"{url}/queues", headers={"Authorization": f"Basic {good}"})
    assert status == 200 and b"instance-builds" in page


@pytest.mark.parametrize("env, message", [
    ({"SIDEKIQ_WEB_AUTH_BASIC": "no-colon"}, "must be user:password"),
    ({"DYNO": "web.1"}, "required on Heroku"),
])
def test_the_dashboard_refuses_bad_auth_settings(env, message):
    done = subprocess.run([str(BIN / "pudding-sidekiq-web")], env={**base_env(), **env},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and message in done.stderr
