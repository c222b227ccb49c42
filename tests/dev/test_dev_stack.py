"""`pudding dev` as a user runs it, driven with the `pudding` command: a build from request
to finished (the test plays the instance), listed, terminated; then Ctrl-C stops it all."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from urllib.parse import urlsplit, urlunsplit

from pudding.dev import moto_ec2
from tests.support import wait_for

from .conftest import BIN, Proc, answers, base_env, http


def without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """The URL without `user:password@`, and the basic-auth header carrying them."""
    parts = urlsplit(url)
    credentials = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {credentials}"}


def test_pudding_dev_runs_a_build_to_the_end_and_stops_cleanly(tmp_path):
    dev = Proc([str(BIN / "pudding"), "dev", "--port", "0", "--dashboard-port", "0"],
               base_env(), tmp_path / "dev.log")
    try:
        exports = wait_for(
            lambda: re.search(r"export PUDDING_URL=(\S+) PUDDING_AUTH_TOKEN=(\S+)", dev.output())
            or (not dev.alive() and dev.process.returncode),
            90, "pudding dev's banner",
        )
        assert isinstance(exports, re.Match), dev.output()
        ec2_url = re.search(r"EC2 +(\S+)", dev.output())[1]
        dashboard_url = re.search(r"dashboard +(http\S+)", dev.output())[1]
        env = {**base_env(), "PUDDING_URL": exports[1], "PUDDING_AUTH_TOKEN": exports[2]}

        def pudding(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([str(BIN / "pudding"), *args], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, (args, done.stderr, dev.output())
            return done

        assert "worker" in pudding("images", "--active").stdout
        waiting = subprocess.Popen(
            [str(BIN / "pudding"), "build", "--site", "org", "--env", "test", "--queue",
             "docker", "--instance-type", "c3.2xlarge", "--wait", "--interval", "0.2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            build_id = waiting.stdout.readline().strip()
            started = json.loads(pudding("build-status", build_id, "--wait", "--until",
                                         "started", "--interval", "0.2", "--json").stdout)
            instance_id = started["instance_id"]

            # The instance: cloud-init fetches the #include URL of its user data...
            user_data = moto_ec2.client(ec2_url).describe_instance_attribute(
                InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
            include = base64.b64decode(user_data).decode()
            assert include.startswith("#include http://x:"), include
            script_url, basic_auth = without_userinfo(include.removeprefix("#include ").strip())
            status, script = http(script_url, headers=basic_auth)
            assert status == 200
            assert script == pudding("init-script", build_id).stdout.encode()
            # ...and the script's last line reports back.
            callback = re.search(rb"-X PATCH -d \"state=finished&instance-id=\$instance_id\" "
                                 rb"'(\S+)'", script)[1].decode()
            callback_url, callback_auth = without_userinfo(callback)
            status, _ = http(callback_url, "PATCH",
                             f"state=finished&instance-id={instance_id}".encode(),
                             {**callback_auth,
                              "Content-Type": "application/x-www-form-urlencoded"})
            assert status == 200
            assert waiting.wait(30) == 0, waiting.stderr.read()
            progress = waiting.stderr.read()
            assert f"build {build_id}: finished (instance {instance_id})" in progress
        finally:
            waiting.kill()
            waiting.wait()
            waiting.stdout.close()
            waiting.stderr.close()

        wait_for(lambda: instance_id in pudding("instances").stdout, 20, "the instance listed")
        listed = json.loads(pudding("instances", "--queue", "docker", "--json").stdout)
        assert [i["id"] for i in listed] == [instance_id]
        assert pudding("terminate", instance_id).stdout == f"terminating {instance_id}\n"
        wait_for(lambda: instance_id not in pudding("instances").stdout, 20, "it to go")
        state = moto_ec2.client(ec2_url).describe_instances(InstanceIds=[instance_id])
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"

        # The dashboard sees pudding's queues and its worker process.
        assert answers(f"{dashboard_url}/queues", b"instance-builds")
        assert answers(f"{dashboard_url}/busy", b"instance-terminations")

        tree = dev.descendants()
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        for part in ("redis-server", "moto.server", "pudding.web", "pudding.jobs", "rackup"):
            assert part in names, part
        os.killpg(dev.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert dev.process.wait(40) == 0, dev.output()
        assert dev.leftovers() == []
        assert "pudding dev: stopped" in dev.output()
    finally:
        dev.stop()


def test_on_fakeredis_and_when_a_part_dies_everything_stops(tmp_path):
    dev = Proc([str(BIN / "pudding"), "dev", "--port", "0", "--no-dashboard", "--fakeredis"],
               base_env(), tmp_path / "dev.log")
    try:
        exports = wait_for(
            lambda: re.search(r"export PUDDING_URL=(\S+) PUDDING_AUTH_TOKEN=(\S+)", dev.output()),
            90, f"pudding dev's banner:\n{dev.output()}",
        )
        assert "fake_redis" in " ".join(" ".join(p.cmdline()) for p in dev.descendants())
        env = {**base_env(), "PUDDING_URL": exports[1], "PUDDING_AUTH_TOKEN": exports[2]}

        def web_images() -> list[str]:
            listed = subprocess.run([str(BIN / "pudding"), "images", "--role", "web", "--json"],
                                    env=env, capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            return [image["role"] for image in json.loads(listed.stdout)]

        assert wait_for(web_images, 20, "the first EC2 sync") == ["web"]
        built = subprocess.run(
            [str(BIN / "pudding"), "build", "--site", "com", "--env", "prod", "--queue", "q",
             "--instance-type", "c3.large", "--role", "web"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert built.returncode == 0, f"{built.stderr}\n{dev.output()}"
        started = subprocess.run(
            [str(BIN / "pudding"), "build-status", built.stdout.strip(), "--wait",
             "--until", "started", "--field", "state"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert (started.returncode, started.stdout.strip()) == (0, "started"), (
            f"{started.stderr}\n{dev.output()}"
        )

        [api] = [p for p in dev.descendants() if "pudding.web" in " ".join(p.cmdline())]
        api.kill()
        assert dev.process.wait(40) == 1
        assert "api exited with status -9; stopping everything" in dev.output()
        assert dev.leftovers() == []
    finally:
        dev.stop()
