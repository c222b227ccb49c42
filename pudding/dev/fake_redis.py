"""`python -m pudding.dev.fake_redis --port N`: fakeredis's TCP server, for machines
without redis-server. It runs the Lua scripts the job engine relies on through `lupa`."""

from __future__ import annotations

import signal
import threading

import click
from fakeredis import FakeRedis, TcpFakeServer
from redis.lock import Lock

from pudding.sidekiq.fetch import FETCH_SCRIPT
from pudding.sidekiq.scheduled import ENQUEUE_SCRIPT
from pudding.store.builds import CREATE_SCRIPT


@click.command()
@click.option("--port", type=int, required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def main(port: int, host: str) -> None:
    server = TcpFakeServer((host, port))
    # fakeredis's TCP server hangs up after a NOSCRIPT reply, which redis-py meets on the
    # first EVALSHA of each script: load pudding's scripts before any client comes.
    preload = FakeRedis(server=server.fake_server)
    lock_scripts = (Lock.LUA_RELEASE_SCRIPT, Lock.LUA_EXTEND_SCRIPT, Lock.LUA_REACQUIRE_SCRIPT)
    for script in (FETCH_SCRIPT, ENQUEUE_SCRIPT, CREATE_SCRIPT, *lock_scripts):
        preload.script_load(script)
    # Connected clients must not keep the process alive once it is told to stop.
    server.daemon_threads = True
    server.block_on_close = False

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"fakeredis listening on {host}:{port}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
