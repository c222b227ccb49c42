"""Fixtures shared by every test: a private redis-server, and a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support import RedisServer, SlackStandIn


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a flushed database on the session's Redis."""
    url = redis_server.url(0)
    redis.Redis.from_url(url).flushall()
    return url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A client on that database, answering str."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def rb(redis_url: str) -> Iterator[redis.Redis]:
    """A client on that database, answering bytes, as the engine's does."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A stand-in for Slack's incoming webhook, recording what it receives."""
    stand_in = SlackStandIn()
    yield stand_in
    stand_in.close()
