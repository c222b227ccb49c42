"""Redis clients for the engine."""

from __future__ import annotations

from redis import BlockingConnectionPool, Redis

# Longer than the 2 s a blocking fetch waits, short enough to notice a dead server.
SOCKET_TIMEOUT = 10


def create_redis(url: str, pool_size: int) -> Redis:
    """A client for `redis://`, `rediss://` or `unix://` URLs (password and db included).

    Payloads stay byte-exact: Sidekiq acks and requeues by the exact string read,
    and "surrogateescape" carries any invalid UTF-8 in a job back unchanged.
    Threads wait for a free connection instead of failing when the pool is busy.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=SOCKET_TIMEOUT,
        decode_responses=True,
        encoding_errors="surrogateescape",
        socket_connect_timeout=5,
        socket_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
