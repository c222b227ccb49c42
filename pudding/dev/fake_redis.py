"""`python -m pudding.dev.fake_redis --port N`: fakeredis's TCP server, for machines
without redis-server. It runs the Lua scripts the job engine relies on through `lupa`."""

from __future__ import annotations

import signal
import threading

import click
from fakeredis import TcpFakeServer


@click.command()
@click.option("--port", type=int, required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def main(port: int, host: str) -> None:
    server = TcpFakeServer((host, port))
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
