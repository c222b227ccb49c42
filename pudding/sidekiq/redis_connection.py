"""How a worker process talks to Redis: one policy for the engine and for the jobs' stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


@dataclass(frozen=True)
class RedisPolicy:
    """Timeouts and reconnects. A command is never retried by the client: a connection
    that fails is dropped and opens again at the next command, and each loop of the
    engine (fetch, heartbeat, poller) backs off and carries on, so a retry inside the
    client would only hide an outage from the code that knows what to do about it."""

    # Longer than the 0.5 s a blocking fetch waits, short enough to notice a dead server.
    socket_timeout: float = 10.0
    connect_timeout: float = 5.0
    health_check_interval: int = 30

    def options(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py client or pool."""
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": self.health_check_interval,
            "retry": Retry(NoBackoff(), 0),
        }


WORKER_POLICY = RedisPolicy()


def create_redis(url: str, pool_size: int, policy: RedisPolicy = WORKER_POLICY) -> Redis:
    """The engine's client for `redis://`, `rediss://` or `unix://` URLs (password and db
    included). It answers bytes: a payload is whatever bytes were in the queue, and it is
    acked, requeued and killed by exactly those bytes (Sidekiq matches by value), valid
    UTF-8 or not. Threads wait for a free connection instead of failing when all are busy.
    """
    pool = BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=policy.socket_timeout, **policy.options()
    )
    return Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
