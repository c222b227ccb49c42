"""deploy/nginx/pudding.conf, run by Debian's nginx in front of the real server: requests
pass, X-Request-Id goes both ways, the log shows the client's address, and nginx cuts off
a client that sends its headers too slowly."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import LoggedProcess, free_port

from .conftest import AUTH, ROOT, TOKEN

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HEADER_TIMEOUT = 2

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def nginx_config(workdir: Path, listen: int, upstream: int) -> Path:
    site = (ROOT / "deploy" / "nginx" / "pudding.conf").read_text()
    site = site.replace("server 127.0.0.1:42151;", f"server 127.0.0.1:{upstream};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    site = re.sub(r"client_header_timeout \d+s;", f"client_header_timeout {HEADER_TIMEOUT}s;",
                  site)
    (workdir / "pudding.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {workdir}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = workdir / "nginx.conf"
    main.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/access.log;
{temp}
    include {workdir}/pudding.conf;
}}
""")
    return main


@pytest.fixture
def proxied(start_server, redis_url, tmp_path) -> Iterator[tuple[object, int]]:
    server = start_server(args=("--trusted-proxy", "127.0.0.1"), PUDDING_AUTH_TOKEN=TOKEN,
                          PUDDING_REDIS_URL=redis_url)
    workdir = tmp_path / "nginx"
    workdir.mkdir()
    for attempt in range(5):
        # nginx binds its own port; if another process took it meanwhile, take another.
        port = free_port()
        config = nginx_config(workdir, port, server.port)
        nginx = LoggedProcess([NGINX, "-p", str(workdir), "-c", str(config),
                               "-e", str(workdir / "error.log")], os.environ,
                              workdir / f"nginx-{attempt}.out", workdir)
        deadline = time.monotonic() + 10
        while nginx.process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        if nginx.process.poll() is None:
            break
        nginx.stop()
        errors = (workdir / "error.log").read_text(errors="replace")
        assert "Address already in use" in errors, errors + nginx.output()
    else:
        pytest.fail("nginx found no free port in 5 attempts")
    yield server, port
    nginx.stop()


def get(port: int, path: str, headers: dict[str, str], source: str = "127.0.0.1"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                            source_address=(source, 0))
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def log_line(server, request_id: str) -> dict:
    deadline = time.monotonic() + 10
    while True:
        for line in server.output().splitlines():
            if line.startswith("{") and f'"request_id": "{request_id}"' in line:
                return json.loads(line)
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)


def test_the_api_answers_through_nginx(proxied):
    server, port = proxied
    response, body = get(port, "/", {})
    assert (response.status, body) == (200, b"ohai\n")
    made_by_nginx = response.getheader("X-Request-Id")
    assert made_by_nginx and log_line(server, made_by_nginx)["path"] == "/"

    response, body = get(port, "/instance-builds?limit=1",
                         {**AUTH, "X-Request-Id": "test-req-1"}, source="127.0.0.2")
    assert response.status == 200 and json.loads(body) == {"instance_builds": []}
    assert response.headers.get_all("X-Request-Id") == ["test-req-1"]
    line = log_line(server, "test-req-1")
    # pudding's peer is nginx at 127.0.0.1; the log shows the client's own address.
    assert line["remote_addr"] == "127.0.0.2"
    assert line["status"] == 200


def test_nginx_cuts_off_a_slow_header(proxied):
    _server, port = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT + 5) as sock:
        began = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        reply = sock.recv(4096)
        # nginx closes it (it may first answer 408).
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - began < HEADER_TIMEOUT + 3
