"""Init scripts and their one-time passwords, in the Go original's keys and encoding.

The worker stores both (`store`), cloud-init fetches the script with the password,
and `wipe` deletes both once the instance reports it has finished starting.
"""

from __future__ import annotations

import base64
import binascii
import gzip

from redis import Redis

DEFAULT_TTL = 600


def script_key(build_id: str) -> str:
    return f"pudding:init-script:{build_id}"


def auth_key(build_id: str) -> str:
    return f"pudding:auth:{build_id}"


class CorruptInitScript(ValueError):
    """The stored value is not base64 of gzip data."""


def encode(script: bytes) -> str:
    return base64.b64encode(gzip.compress(script, compresslevel=9)).decode("ascii")


def decode(stored: str) -> bytes:
    try:
        return gzip.decompress(base64.b64decode(stored, validate=False))
    except (binascii.Error, OSError, EOFError) as error:
        raise CorruptInitScript(str(error)) from None


class InitScripts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def store(self, build_id: str, script: bytes, password: str, ttl: int = DEFAULT_TTL) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(script_key(build_id), encode(script), ex=ttl)
            pipe.set(auth_key(build_id), password, ex=ttl)
            pipe.execute()

    def script(self, build_id: str) -> bytes | None:
        """The script byte for byte; None when expired or wiped."""
        stored = self.redis.get(script_key(build_id))
        return None if stored is None else decode(stored)

    def password(self, build_id: str) -> str | None:
        return self.redis.get(auth_key(build_id))

    def wipe(self, build_id: str) -> None:
        self.redis.delete(script_key(build_id), auth_key(build_id))
