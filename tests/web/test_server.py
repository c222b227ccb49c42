"""bin/pudding-server as a process: startup checks, graceful shutdown, its logs."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pudding.store.builds import BuildStore
from pudding.store.init_scripts import InitScripts
from tests.support import free_port, wait_for

from .conftest import ROOT, TOKEN

BUILD = {"instance_builds": {"site": "org", "env": "test", "queue": "docker",
                             "instance_type": "c3.4xlarge", "count": 1}}


def run_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUDDING_")}
    return subprocess.run([str(ROOT / "bin" / "pudding-server"), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=30)


def test_refuses_to_start_without_a_token():
    done = run_server("--addr", f"127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert "no auth token: set PUDDING_AUTH_TOKEN or pass --auth-token" in done.stderr
    blank = run_server("--addr", f"127.0.0.1:{free_port()}", PUDDING_AUTH_TOKEN="   ")
    assert blank.returncode == 2


def test_a_redis_provider_naming_an_unset_variable_is_a_clear_failure():
    done = run_server("--addr", f"127.0.0.1:{free_port()}", PUDDING_AUTH_TOKEN=TOKEN,
                      REDIS_PROVIDER="REDISGREEN_URL", REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 2
    assert "REDIS_PROVIDER names REDISGREEN_URL, which is not set" in done.stderr


def test_a_port_in_use_is_a_clear_failure():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_server("--addr", f"127.0.0.1:{port}", PUDDING_AUTH_TOKEN=TOKEN)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_cpu_it_may_not_use_is_a_clear_failure():
    done = run_server("--addr", f"127.0.0.1:{free_port()}", "--cpus", "100000",
                      PUDDING_AUTH_TOKEN=TOKEN)
    assert done.returncode == 2
    assert "CPU 100000 is not one this process may use" in done.stderr


def test_cpus_pins_every_thread_of_the_server(start_server, redis_url):
    cpu = max(os.sched_getaffinity(0))
    server = start_server(PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url,
                          PUDDING_WEB_CPUS=str(cpu))
    tasks = list((Path("/proc") / str(server.process.pid) / "task").iterdir())
    # waitress's threads, the log writer, the main thread.
    assert len(tasks) > 3
    for task in tasks:
        status = (task / "status").read_text()
        assert f"Cpus_allowed_list:\t{cpu}\n" in status


def call(server, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(server.url(path), data=body, method=method,
                                     headers=headers or {"Authorization": f"token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def server(start_server, redis_url, slack):
    return start_server(PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url,
                        PUDDING_SLACK_WEBHOOK_URL=slack.url)


def test_delete_root_lets_the_slow_request_finish_then_exits_0(server, r):
    # Redis holds back writes for 0.6 s (under the server's 1 s Redis timeout): the POST
    # below is in flight, waiting for its Lua call, while DELETE / arrives.
    r.execute_command("CLIENT", "PAUSE", 600, "WRITE")
    slow: dict[str, object] = {}

    def create_build() -> None:
        slow["result"] = call(server, "POST", "/instance-builds", json.dumps(BUILD).encode())
        slow["at"] = time.monotonic()

    post = threading.Thread(target=create_build)
    post.start()
    wait_for(lambda: r.info("clients")["blocked_clients"], 5, "the POST to reach Redis")

    auth = {"Authorization": f"token {TOKEN}"}
    kept_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    kept_alive.request("GET", "/")
    assert kept_alive.getresponse().read() == b"ohai\n"
    first = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    first.request("DELETE", "/", headers=auth)
    response = first.getresponse()
    assert (response.status, response.read()) == (204, b"")
    # A second call on a connection that was open already is harmless; new ones are refused.
    kept_alive.request("DELETE", "/", headers=auth)
    assert kept_alive.getresponse().status == 204
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url("/"), timeout=2)

    assert server.process.wait(15) == 0
    exited = time.monotonic()
    post.join(5)
    status, body = slow["result"]
    assert status == 202
    assert slow["at"] <= exited
    build_id = json.loads(body)["instance_builds"][0]["id"]
    assert BuildStore(r).get(build_id).state == "pending"
    assert '"event": "stopped"' in server.output()


def test_slack_messages_still_waiting_are_sent_before_exit(server, slack):
    build_ids = [json.loads(call(server, "POST", "/instance-builds", json.dumps(BUILD).encode())[1])
                 ["instance_builds"][0]["id"] for _ in range(2)]
    slack.delay = 1.0  # the first message is on its way when SIGTERM comes; the second waits
    for build_id in build_ids:
        assert call(server, "PATCH", f"/instance-builds/{build_id}?state=finished")[0] == 200
    server.process.terminate()
    assert server.process.wait(15) == 0
    texts = slack.texts()
    assert len(texts) == 2
    assert all(build_id in text for build_id, text in zip(build_ids, texts, strict=True))


def test_sigterm_stops_gracefully(server):
    server.process.terminate()
    assert server.process.wait(15) == 0


@pytest.mark.parametrize("listen_via", ["PORT", "PUDDING_ADDR"])
def test_the_port_from_the_environment(start_server, redis_url, listen_via):
    server = start_server(listen_via, PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url)
    assert call(server, "GET", "/instances")[0] == 200
    server.process.terminate()
    assert server.process.wait(15) == 0


def test_one_json_access_line_per_request_and_no_secrets(server, r):
    build_id = "6f0c1f5a-7a8f-4f1e-9a4b-2b2f6b0b8f3e"
    InitScripts(r).store(build_id, b"echo hi\n", "one-time-Pa55word")
    basic = base64.b64encode(b"x:one-time-Pa55word").decode()
    assert call(server, "GET", f"/init-scripts/{build_id}",
                headers={"Authorization": f"Basic {basic}"})[0] == 200
    assert call(server, "GET", "/instances?env=prod")[0] == 200
    wrong = {"Authorization": "token wrong-token-xyz"}
    assert call(server, "GET", "/instances", headers=wrong)[0] == 403
    assert call(server, "POST", "/kaboom")[0] == 500

    server.process.terminate()
    server.process.wait(15)
    # Every line is JSON: waitress's own records go through the same renderer.
    lines = [json.loads(line) for line in server.output().splitlines()]
    access = [line for line in lines if line["event"] == "request"]
    assert [(a["method"], a["path"], a["status"]) for a in access[-4:]] == [
        ("GET", f"/init-scripts/{build_id}", 200), ("GET", "/instances", 200),
        ("GET", "/instances", 403), ("POST", "/kaboom", 500)]
    assert access[-3]["query"] == "env=prod"
    assert all(len(a["request_id"]) == 32 for a in access)
    crash = next(line for line in lines if line["event"] == "request failed")
    assert crash["request_id"] == access[-1]["request_id"]
    assert "simulated kaboom" in crash["exception"]
    output = server.output()
    for secret in (TOKEN, "one-time-Pa55word", basic, "wrong-token-xyz"):
        assert secret not in output
    assert BuildStore(r).recent() == []
