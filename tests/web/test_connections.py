"""The real server against many, slow and broken connections, and across a Redis
restart. Bounded in time and count, on loopback only."""

from __future__ import annotations

import concurrent.futures
import json
import selectors
import socket
import threading
import time
import urllib.request

from .conftest import AUTH, TOKEN

IDLE_TIMEOUT = 4
REQUEST_TIMEOUT = 6
# waitress checks its timeouts once a second, and its event loop wakes at least once a
# second: a socket is closed at most about two seconds after its time is up.
CLOSE_SLACK = 3.0


class Attackers:
    """`idle` sockets that send nothing and `slow` ones that send a header byte every 2 s,
    each replaced by a new one as soon as the server closes it; records how old each was
    (from its connect, or its first byte) when the server closed it."""

    def __init__(self, port: int, idle: int, slow: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.closed_after: dict[str, list[float]] = {"idle": [], "slow": []}
        self.open = {"idle": 0, "slow": 0}
        self._stop = threading.Event()
        for kind, count in (("idle", idle), ("slow", slow)):
            for _ in range(count):
                self._connect(kind)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _connect(self, kind: str) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        if kind == "slow":
            sock.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        self.selector.register(sock, selectors.EVENT_READ, [kind, time.monotonic()])
        self.open[kind] += 1

    def _run(self) -> None:
        next_byte = time.monotonic() + 2
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                kind, since = key.data
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self._closed(key.fileobj, kind, since)
            if time.monotonic() >= next_byte:
                next_byte += 2
                for key in list(self.selector.get_map().values()):
                    if key.data[0] == "slow":
                        try:
                            key.fileobj.send(b"a")
                        except OSError:
                            self._closed(key.fileobj, *key.data)

    def _closed(self, sock: socket.socket, kind: str, since: float) -> None:
        self.closed_after[kind].append(time.monotonic() - since)
        self.selector.unregister(sock)
        sock.close()
        self.open[kind] -= 1
        self._connect(kind)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def test_idle_and_slow_clients_do_not_stop_normal_requests(start_server, redis_url):
    server = start_server(
        args=("--idle-timeout", str(IDLE_TIMEOUT), "--request-timeout", str(REQUEST_TIMEOUT)),
        PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url)
    attackers = Attackers(server.port, idle=300, slow=100)
    latencies = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            began = time.monotonic()
            request = urllib.request.Request(server.url("/instance-builds?limit=1"),
                                             headers=AUTH)
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            latencies.append(time.monotonic() - began)
            time.sleep(max(0.0, began + 0.5 - time.monotonic()))
    finally:
        attackers.stop()
    assert len(latencies) >= 50
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    # Every attacker socket was closed by the server for its timeout, and none early.
    for kind, timeout in (("idle", IDLE_TIMEOUT), ("slow", REQUEST_TIMEOUT)):
        ages = attackers.closed_after[kind]
        assert len(ages) >= 300 if kind == "idle" else len(ages) >= 100, (kind, len(ages))
        assert timeout - 0.5 <= min(ages), (kind, min(ages))
        assert max(ages) <= timeout + CLOSE_SLACK, (kind, max(ages))


def raw_request(port: int, data: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in
               (line.partition(": ") for line in lines)}
    return status, headers, body


def test_errors_that_waitress_answers_have_the_json_shape(start_server, redis_url):
    server = start_server(args=("--max-body-bytes", "2048", "--max-header-bytes", "2048"),
                          PUDDING_AUTH_TOKEN=TOKEN, PUDDING_REDIS_URL=redis_url)
    cases = [
        (b"POST /instance-builds HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n",
         "413"),
        (b"POST /instance-builds HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\n", "400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n", "431"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "400"),
    ]
    for data, code in cases:
        status, headers, body = raw_request(server.port, data)
        assert status.split()[1] == code, (data[:60], status)
        assert headers["content-type"] == "application/vnd.api+json"
        [error] = json.loads(body)["errors"]
        assert error["details"]


def test_the_first_requests_after_a_redis_restart_succeed(start_server, private_redis):
    server = start_server(args=("--threads", "8"), PUDDING_AUTH_TOKEN=TOKEN,
                          PUDDING_REDIS_URL=private_redis.url())

    def get(_: int) -> int:
        request = urllib.request.Request(server.url("/instance-builds?limit=1"), headers=AUTH)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        # Enough at once that every server thread takes a connection of its own.
        assert set(pool.map(get, range(64))) == {200}
        private_redis.kill()
        private_redis.start()
        assert list(pool.map(get, range(16))) == [200] * 16
