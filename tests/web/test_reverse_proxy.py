"""deploy/nginx/pudding.conf, run by Debian's nginx in front of the real server: requests
pass, X-Request-Id goes both ways, the log shows the client's address, and nginx cuts off
a client that sends its headers too slowly."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import LoggedProcess, free_port, wait_for

from .conftest import AUTH, ROOT, TOKEN

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The test's copy has short client timeouts, so the slow client is cut off quickly.
CLIENT_TIMEOUT = 2

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def nginx_config(workdir: Path, listen: int, upstream: int) -> Path:
    """A top-level nginx.conf that includes a copy of the repo's site file, pointed at
    this test's ports, with everything nginx writes in `workdir`."""
    site = (ROOT / "deploy" / "nginx" / "pudding.conf").read_text()
    for old, new in [("server 127.0.0.1:42151;", f"server 127.0.0.1:{upstream};"),
                     ("listen 80;", f"listen 127.0.0.1:{listen};")]:
        assert old in site, old
        site = site.replace(old, new)
    site, count = re.subn(r"(client_header_timeout|client_body_timeout|send_timeout) \d+s;",
                          rf"\1 {CLIENT_TIMEOUT}s;", site)
    assert count == 3, site
    (workdir / "pudding.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {workdir}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = workdir / "nginx.conf"
    # As root, nginx's workers would switch to `nobody`, who cannot read the tmp dir.
    main.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format with_id '$remote_addr "$request" $status $pudding_request_id';
    access_log {workdir}/access.log with_id;
{temp}
    include {workdir}/pudding.conf;
}}
""")
    return main


@pytest.fixture
def proxied(start_server: Any, redis_url: str, tmp_path: Path) -> Iterator[tuple[Any, int, Path]]:
    """pudding-server trusting 127.0.0.1, and nginx in front of it: (server, nginx's port,
    nginx's dir)."""
    server = start_server(args=("--trusted-proxy", "127.0.0.1"), PUDDING_AUTH_TOKEN=TOKEN,
                          PUDDING_REDIS_URL=redis_url)
    workdir = tmp_path / "nginx"
    workdir.mkdir()
    pid_file, error_log = workdir / "nginx.pid", workdir / "error.log"
    for attempt in range(5):
        # free_port() only says the port was free a moment ago: if nginx cannot bind it
        # (another process took it meanwhile), try another.
        port = free_port()
        config = nginx_config(workdir, port, server.port)
        error_log.write_text("")
        pid_file.unlink(missing_ok=True)
        # Its own session, so that teardown can end its workers too, whatever happens.
        nginx = LoggedProcess([NGINX, "-p", str(workdir), "-c", str(config), "-e", str(error_log)],
                              os.environ, workdir / f"nginx-{attempt}.out", workdir,
                              new_session=True)
        # nginx writes its pid file once its sockets are bound, or exits.
        wait_for(lambda process=nginx.process: pid_file.exists() or process.poll() is not None,
                 10, "nginx")
        if nginx.process.poll() is None:
            break
        nginx.stop()
        errors = error_log.read_text(errors="replace") + nginx.output()
        assert "Address already in use" in errors, errors
    else:
        pytest.fail("nginx found no free port in 5 attempts")
    try:
        wait_for(lambda: _accepts(port), 10, f"nginx on port {port}")
        yield server, port, workdir
    finally:
        nginx.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(nginx.process.pid, signal.SIGKILL)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def get(port: int, path: str, headers: dict[str, str],
        source: str = "127.0.0.1") -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                            source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def log_line(server: Any, request_id: str) -> dict[str, Any]:
    """pudding's access-log line for the request with this id, once it is written."""
    def find() -> dict[str, Any] | None:
        for line in server.output().splitlines():
            if line.startswith("{") and f'"request_id": "{request_id}"' in line:
                entry = json.loads(line)
                if entry.get("event") == "request":
                    return entry
        return None
    return wait_for(find, 10, f"pudding's log line for request {request_id}")


def test_the_api_answers_through_nginx(proxied: tuple[Any, int, Path]) -> None:
    server, port, workdir = proxied
    response, body = get(port, "/", {})
    assert (response.status, body) == (200, b"ohai\n")
    # No id sent: nginx made one ($request_id: 32 hex digits), and pudding logged it.
    made_by_nginx = response.getheader("X-Request-Id")
    assert made_by_nginx and re.fullmatch(r"[0-9a-f]{32}", made_by_nginx)
    assert response.headers.get_all("X-Request-Id") == [made_by_nginx]
    assert log_line(server, made_by_nginx)["path"] == "/"
    wait_for(lambda: f'"GET / HTTP/1.1" 200 {made_by_nginx}'
             in (workdir / "access.log").read_text(), 10, "nginx's log line")

    # From another address, authenticated, with the client's own id.
    response, body = get(port, "/instance-builds?limit=1",
                         {**AUTH, "X-Request-Id": "test-req-1"}, source="127.0.0.2")
    assert response.status == 200 and json.loads(body) == {"instance_builds": []}
    assert response.headers.get_all("X-Request-Id") == ["test-req-1"]
    line = log_line(server, "test-req-1")
    # pudding's peer is nginx at 127.0.0.1; the log shows the client's own address.
    assert (line["remote_addr"], line["status"], line["path"]) == (
        "127.0.0.2", 200, "/instance-builds")

    # Without the token, through nginx too: 401.
    response, _ = get(port, "/instance-builds", {"X-Request-Id": "test-req-2"})
    assert response.status == 401
    assert log_line(server, "test-req-2")["remote_addr"] == "127.0.0.1"


def test_an_id_pudding_would_not_keep_is_replaced_by_nginx(proxied: tuple[Any, int, Path]) -> None:
    server, port, _ = proxied
    response, _ = get(port, "/", {"X-Request-Id": "no spaces allowed"})
    request_id = response.getheader("X-Request-Id")
    assert request_id and re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert log_line(server, request_id)["status"] == 200


def test_nginx_cuts_off_a_slow_header(proxied: tuple[Any, int, Path]) -> None:
    """A client that trickles its header a byte at a time (slowloris) is closed once
    client_header_timeout has passed since the connection opened, not per byte."""
    _server, port, _ = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        began = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        reply = None
        while reply is None and time.monotonic() - began < CLIENT_TIMEOUT + 5:
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                reply = sock.recv(4096)
                break
            try:
                sock.sendall(b"a")
            except OSError:  # reset: nginx closed it
                reply = b""
        elapsed = time.monotonic() - began
    # nginx closes it (it may first answer 408).
    assert reply is not None, "nginx kept the slow client"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply
    assert CLIENT_TIMEOUT - 0.5 < elapsed < CLIENT_TIMEOUT + 3
