"""bin/pudding-workers: settings from flags, files and compressed env vars; bad ones exit 2."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from pudding.config import QueueNames
from pudding.jobs.__main__ import queues_from_env
from pudding.jobs.sources import compress
from tests.support import SlackStandIn, wait_for

from .conftest import INSTANCE_RSA, ROOT, worker_env


@pytest.fixture
def env(redis_url, aws_env):
    slack = SlackStandIn()
    yield worker_env(redis_url, aws_env, slack, "https://pudding.example.com")
    slack.close()


def run_worker(env, *args, cwd=ROOT):
    return subprocess.run(
        [str(ROOT / "bin" / "pudding-workers"), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "changes", "message"),
    [
        ((), {"PUDDING_WEB_HOSTNAME": "pudding.example.com"},
         "the web hostname must be the API's public URL with its scheme"),
        ((), {"PUDDING_WEB_HOSTNAME": "https://u:p@pudding.example.com"},
         "must not carry credentials"),
        ((), {"INSTANCE_RSA": ""}, "missing instance RSA key"),
        ((), {"INSTANCE_RSA": "bm90IGd6aXA="}, "INSTANCE_RSA is not base64 of gzip"),
        ((), {"INIT_SCRIPT_TEMPLATE": compress("{{.Env | printf}}")},
         "unsupported Go template action"),
        ((), {"INIT_SCRIPT_TEMPLATE": compress("{{ nope }}")},
         "the init-script template fails: 'nope' is undefined"),
        ((), {"INSTANCE_YML": compress("amqp: [1]")}, "amqp must be a mapping"),
        ((), {"PUDDING_TEST_CRASH_AT": "lunch"}, "PUDDING_TEST_CRASH_AT must be one of image"),
        ((), {"AWS_SECRET_ACCESS_KEY": ""}, "give both the AWS access key id and its secret"),
        (("-R", "moon-1"), {}, "'moon-1' is not an AWS region name"),
        (("--ssh-cidr", "everyone"), {}, "bad SSH CIDR 'everyone'"),
        (("-I", "100"), {}, "expiries must be longer than the mini-worker interval"),
        (("--redis-url", "http://localhost"), {}, "the Redis URL must start with redis://"),
        (("-r", "no.such.module"), {}, "cannot load job module"),
        (("-T", "/nonexistent/template"), {}, "does not exist"),
    ],
)
def test_bad_settings_exit_2_and_say_which(env, args, changes, message):
    done = run_worker({**env, **changes}, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_no_aws_credentials_anywhere(env, tmp_path):
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    bare |= {"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
             "AWS_CONFIG_FILE": str(tmp_path / "none"),
             "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    done = run_worker(bare)
    assert done.returncode == 2
    assert "no AWS credentials" in done.stderr


def test_texts_from_files_and_the_rsa_key_from_the_working_directory(env, tmp_path: Path, r):
    (tmp_path / "instance_rsa").write_text(INSTANCE_RSA)
    template = tmp_path / "init.sh"
    template.write_text("#!/bin/sh\necho {{ site }}\n")
    meta = tmp_path / "meta.yml"
    meta.write_text("papertrail: {org: x}\n")
    bare = {k: v for k, v in env.items()
            if k not in ("INSTANCE_RSA", "INIT_SCRIPT_TEMPLATE", "INSTANCE_YML")}
    process = subprocess.Popen(
        [str(ROOT / "bin" / "pudding-workers"), "-T", str(template), "-Y", str(meta)],
        env=bare, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: r.smembers("processes") or process.poll() is not None,
                 message="the worker to start")
        assert process.poll() is None, process.stdout.read().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_the_originals_queues_variable():
    names = QueueNames("builds-q", "terminations-q")
    assert queues_from_env({}, names) == ("builds-q", "terminations-q")
    assert queues_from_env({"QUEUES": "a:5, b ,"}, names) == ("a", "b")


def test_help_lists_the_original_flags():
    done = subprocess.run(
        [str(ROOT / "bin" / "pudding-workers"), "--help"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert done.returncode == 0
    for flag in ("--web-hostname", "--instance-yml", "--init-script-template", "--instance-rsa",
                 "--mini-worker-interval", "--instance-expiry", "--image-expiry", "--queue",
                 "--concurrency", "--slack-webhook-url", "--aws-region"):
        assert flag in done.stdout
