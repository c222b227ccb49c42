"""The `pudding` client against a running API: output, and exit codes scripts can trust."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from pudding.client.cli import cli
from pudding.client.errors import ExitCode
from pudding.store.builds import FAILED, FINISHED, STARTED, BuildStore
from pudding.store.cache import Cache, Image, Instance
from pudding.store.init_scripts import InitScripts
from tests.support import free_port

from .conftest import BIN, TOKEN, base_env

BUILD_ARGS = ["build", "--site", "org", "--env", "test", "--queue", "docker",
              "--instance-type", "c3.2xlarge"]


@pytest.fixture
def pudding(api):
    runner = CliRunner()

    def run(*args: str, token: str = TOKEN, url: str | None = None, **kwargs):
        env = {"PUDDING_URL": url or api.url, "PUDDING_AUTH_TOKEN": token}
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False, **kwargs)

    return run


def test_a_build_is_created_listed_and_shown(pudding, r):
    created = pudding(*BUILD_ARGS, "--count", "3", "--slack-channel", "ops")
    assert created.exit_code == 0, created.output
    build_id = created.stdout.strip()
    assert BuildStore(r).get(build_id).count == 3
    assert r.llen("queue:instance-builds") == 1

    listed = pudding("builds")
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "SITE", "ENV", "QUEUE", "INSTANCE_TYPE",
                              "INSTANCE_ID", "CREATED_AT"]
    assert row.split()[:7] == [build_id, "pending", "org", "test", "docker", "c3.2xlarge", "-"]

    shown = json.loads(pudding("build-status", build_id, "--json").stdout)
    assert (shown["id"], shown["state"], shown["slack_channel"]) == (build_id, "pending", "ops")
    assert pudding("build-status", build_id, "--field", "state").stdout == "pending\n"
    human = pudding("build-status", build_id).stdout
    assert f"id                 {build_id}" in human and "history" in human

    again = pudding(*BUILD_ARGS, "--id", build_id, "--json")
    assert json.loads(again.stdout)["id"] == build_id
    assert r.llen("queue:instance-builds") == 1, "the same id enqueues nothing new"


def test_wait_shows_progress_and_the_exit_code_says_how_it_ended(pudding, r):
    store = BuildStore(r)

    def worker(final: str) -> None:
        build_id = wait_for_id()
        time.sleep(0.3)
        store.update(build_id, instance_id="i-0123abcd")
        store.transition(build_id, STARTED)
        time.sleep(0.3)
        store.transition(build_id, final, **({"error": "image: no such AMI"}
                                             if final == FAILED else {}))

    def wait_for_id() -> str:
        while not (ids := r.zrange("pudding:instance-builds", 0, -1)):
            time.sleep(0.05)
        return ids[-1]

    for final, code in [(FINISHED, ExitCode.OK), (FAILED, ExitCode.FAILED)]:
        r.flushdb()
        thread = threading.Thread(target=worker, args=(final,))
        thread.start()
        result = pudding(*BUILD_ARGS, "--wait", "--interval", "0.1")
        thread.join()
        assert result.exit_code == code, result.output
        build_id = result.stdout.strip()
        assert result.stderr.splitlines()[:2] == [
            f"build {build_id}: pending",
            f"build {build_id}: started (instance i-0123abcd)",
        ]
        if final == FAILED:
            assert f"build {build_id}: failed (instance i-0123abcd): image: no such AMI" in (
                result.stderr)

    stuck = pudding(*BUILD_ARGS, "--wait", "--wait-timeout", "0.3", "--interval", "0.1")
    assert stuck.exit_code == ExitCode.TIMED_OUT
    assert "is still pending after 0.3 s" in stuck.stderr

    build_id = stuck.stdout.strip()
    store.transition(build_id, STARTED)
    until = pudding("build-status", build_id, "--wait", "--until", "started", "--json")
    assert until.exit_code == 0 and json.loads(until.stdout)["state"] == "started"


def test_instances_and_images(pudding, r):
    cache = Cache(r)
    cache.store_instances([
        Instance(id="i-0aaa", name="travis-org-test-docker-0aaa", instance_type="c3.large",
                 site="org", env="test", queue="docker", role="worker"),
        Instance(id="i-0bbb", name="travis-com-prod-linux-0bbb", instance_type="c3.large",
                 site="com", env="prod", queue="linux", role="worker"),
    ])
    cache.store_images([
        Image(image_id="ami-0123abcd", role="worker", active=True, name="w1", state="available"),
        Image(image_id="ami-0456cdef", role="worker", active=False, name="w0",
              state="available"),
    ])
    table = pudding("instances").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "INSTANCE_TYPE"]
    assert sorted(line.split()[0] for line in table[1:]) == ["i-0aaa", "i-0bbb"]
    only_com = json.loads(pudding("instances", "--site", "com", "--json").stdout)
    assert [instance["id"] for instance in only_com] == ["i-0bbb"]

    active = pudding("images", "--active").stdout.splitlines()
    assert [line.split()[:3] for line in active[1:]] == [["ami-0123abcd", "worker", "true"]]
    inactive = json.loads(pudding("images", "--inactive", "--json").stdout)
    assert [image["image_id"] for image in inactive] == ["ami-0456cdef"]


def test_terminate_enqueues_the_job(pudding, r):
    Cache(r).store_instances([Instance(id="i-0aaa", site="org")])
    result = pudding("terminate", "i-0aaa", "--slack-channel", "ops")
    assert (result.exit_code, result.stdout) == (0, "terminating i-0aaa\n")
    [job] = r.lrange("queue:instance-terminations", 0, -1)
    assert json.loads(job)["args"] == ["i-0aaa", "ops"]

    unknown = pudding("terminate", "i-0fff")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "HTTP 404" in unknown.stderr


def test_init_script_is_printed_byte_for_byte(pudding, r):
    script = "#!/bin/sh\nprintf '%s %% done\\n' \"é\"\n".encode() + bytes(range(1, 9))
    InitScripts(r).store("6f0c1b2a-0000-4000-8000-000000000001", script, "password")
    result = pudding("init-script", "6f0c1b2a-0000-4000-8000-000000000001")
    assert (result.exit_code, result.stdout_bytes) == (0, script)


def test_exit_codes_for_what_went_wrong(pudding, api):
    refused = pudding("build", "--site", "net", "--env", "test", "--queue", "q",
                      "--instance-type", "c3.large")
    assert refused.exit_code == ExitCode.REFUSED
    assert "site must be either org or com" in refused.stderr

    assert pudding("builds", token="wrong").exit_code == ExitCode.AUTH
    assert pudding("build-status", "nope").exit_code == ExitCode.NOT_FOUND
    unreachable = pudding("builds", url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.exit_code == ExitCode.UNAVAILABLE
    assert "cannot reach the API" in unreachable.stderr
    no_token = pudding("builds", token="")
    assert no_token.exit_code == ExitCode.USAGE and "PUDDING_AUTH_TOKEN" in no_token.stderr
    assert pudding("build", "--site", "org").exit_code == ExitCode.USAGE

    # The same through the shell wrapper, as a script would run it.
    shell = subprocess.run(
        [str(BIN / "pudding"), "build-status", "nope"], capture_output=True, text=True,
        env={**base_env(), "PUDDING_URL": api.url, "PUDDING_AUTH_TOKEN": TOKEN},
    )
    assert (shell.returncode, shell.stdout) == (ExitCode.NOT_FOUND, "")
    assert shell.stderr == "pudding: HTTP 404: no such instance build: nope\n"


def test_config_encode_and_decode_the_compressed_env_vars(tmp_path):
    runner = CliRunner()
    text = "amqp:\n  org: {host: h, password: 'p%s'}\nnon-ASCII: é\n"
    source = tmp_path / "meta.yml"
    source.write_text(text)
    encoded = runner.invoke(cli, ["config", "encode", str(source)]).stdout.strip()
    assert gzip.decompress(base64.b64decode(encoded)).decode() == text

    decoded = runner.invoke(cli, ["config", "decode", "INSTANCE_YML"],
                            env={"INSTANCE_YML": encoded})
    assert (decoded.exit_code, decoded.stdout) == (0, text)

    # What `gzip < file | base64` writes: line-wrapped at 76 columns.
    shell = subprocess.run(f"gzip < {source} | base64", shell=True, capture_output=True,
                           text=True, check=True).stdout
    from_shell = runner.invoke(cli, ["config", "decode", "-"], input=shell)
    assert (from_shell.exit_code, from_shell.stdout) == (0, text)
    from_stdin = runner.invoke(cli, ["config", "encode", "-"], input=text)
    assert gzip.decompress(base64.b64decode(from_stdin.stdout)).decode() == text

    garbage = runner.invoke(cli, ["config", "decode", "X"], env={"X": "not base64 at all!"})
    assert garbage.exit_code == ExitCode.FAILED and "X is not base64" in garbage.stderr
    unset = runner.invoke(cli, ["config", "decode", "UNSET_VAR_FOR_TEST"])
    assert unset.exit_code == ExitCode.USAGE and "UNSET_VAR_FOR_TEST is not set" in unset.stderr


def test_a_503_is_tried_again_with_the_same_build_id():
    """The API answers 503 while Redis is unavailable; the CLI comes back after
    Retry-After, and the build's own id makes the repeated POST harmless."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if len(bodies) < 3:
                reply, status = b'{"errors": [{"details": "redis is unavailable"}]}', 503
            else:
                build = {**bodies[-1]["instance_builds"], "state": "pending"}
                reply, status = json.dumps({"instance_builds": [build]}).encode(), 202
            self.send_response(status)
            self.send_header("Retry-After", "0.1")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        result = CliRunner().invoke(cli, BUILD_ARGS, env={
            "PUDDING_URL": f"http://127.0.0.1:{server.server_port}", "PUDDING_AUTH_TOKEN": "t",
        })
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    ids = {body["instance_builds"]["id"] for body in bodies}
    assert len(bodies) == 3 and ids == {result.stdout.strip()}
