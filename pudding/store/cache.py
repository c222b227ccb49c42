"""The EC2 inventory cache: the worker's sync writes it, the API reads it.

Keys as in the Go original: `pudding:instances` (set of ids) with one hash
`pudding:instance:<iid>` each, and `pudding:images` with `pudding:image:<ami>`.
Unlike the original, a write replaces each hash whole (no stale tag fields), and readers
skip ids whose hash has expired instead of returning empty objects.

Each write also sets `<set key>:generation` to a fresh random token (same TTL as the set),
so a reader that has seen that generation reuses what it read instead of fetching every
hash again. Anything else that changes these keys must delete the generation key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis

INSTANCES_KEY = "pudding:instances"
IMAGES_KEY = "pudding:images"
DEFAULT_EXPIRY = 90

T = TypeVar("T")


def instance_key(instance_id: str) -> str:
    return f"pudding:instance:{instance_id}"


def image_key(image_id: str) -> str:
    return f"pudding:image:{image_id}"


def generation_key(set_key: str) -> str:
    return f"{set_key}:generation"


@dataclass(frozen=True)
class Instance:
    id: str
    name: str = ""
    instance_type: str = ""
    image_id: str = ""
    ip: str = ""
    private_ip: str = ""
    launch_time: str = ""
    queue: str = ""
    env: str = ""
    site: str = ""
    role: str = ""

    def to_json(self) -> dict[str, str]:
        """The Go original's keys, in its order."""
        return {
            "name": self.name, "id": self.id, "instance_type": self.instance_type,
            "image_id": self.image_id, "ip": self.ip, "private_ip": self.private_ip,
            "launch_time": self.launch_time, "queue": self.queue, "env": self.env,
            "site": self.site, "role": self.role,
        }

    def to_hash(self) -> dict[str, str]:
        data = self.to_json()
        data["instance_id"] = data.pop("id")
        return data

    @classmethod
    def from_hash(cls, instance_id: str, data: dict[str, str]) -> Instance:
        get = data.get
        return cls(
            id=instance_id, name=get("name", ""), instance_type=get("instance_type", ""),
            image_id=get("image_id", ""), ip=get("ip", ""), private_ip=get("private_ip", ""),
            launch_time=get("launch_time", ""), queue=get("queue", ""), env=get("env", ""),
            site=get("site", ""), role=get("role", ""),
        )


@dataclass(frozen=True)
class Image:
    image_id: str
    role: str = ""
    active: bool = False
    name: str = ""
    state: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "role": self.role, "active": self.active,
                "name": self.name, "state": self.state}

    def to_hash(self) -> dict[str, str]:
        data = {"image_id": self.image_id, "role": self.role, "name": self.name,
                "state": self.state}
        if self.active:
            data["active"] = "1"
        return data

    @classmethod
    def from_hash(cls, image_id: str, data: dict[str, str]) -> Image:
        return cls(
            image_id=image_id,
            role=data.get("role", ""),
            active=data.get("active", "").lower() in ("1", "t", "true"),
            name=data.get("name", ""),
            state=data.get("state", ""),
        )


class Cache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # set key → (generation, what was read at that generation); see the module doc.
        self._memo: dict[str, tuple[str, tuple[Any, ...]]] = {}

    def store_instances(self, instances: Iterable[Instance], expiry: int = DEFAULT_EXPIRY) -> None:
        """Replace the cached instances with these, atomically."""
        self._store(INSTANCES_KEY, {i.id: i.to_hash() for i in instances}, instance_key, expiry)

    def store_images(self, images: Iterable[Image], expiry: int = DEFAULT_EXPIRY) -> None:
        """Replace the cached images with these, atomically."""
        self._store(IMAGES_KEY, {i.image_id: i.to_hash() for i in images}, image_key, expiry)

    def remove_instance(self, instance_id: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(INSTANCES_KEY, instance_id)
            pipe.delete(instance_key(instance_id))
            pipe.set(generation_key(INSTANCES_KEY), uuid.uuid4().hex, keepttl=True)
            pipe.execute()

    def instance(self, instance_id: str) -> Instance | None:
        """The cached instance, if it is in the set and its hash has not expired."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(INSTANCES_KEY, instance_id)
            pipe.hgetall(instance_key(instance_id))
            member, data = pipe.execute()
        return Instance.from_hash(instance_id, data) if member and data else None

    def instances(self) -> tuple[Instance, ...]:
        """All cached instances, ordered by id."""
        return self._read(INSTANCES_KEY, instance_key, Instance.from_hash)

    def images(self) -> tuple[Image, ...]:
        """All cached images, ordered by id."""
        return self._read(IMAGES_KEY, image_key, Image.from_hash)

    def _store(
        self, set_key: str, hashes: dict[str, dict[str, str]], key_of: Callable[[str], str],
        expiry: int,
    ) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(set_key)
            for member, data in hashes.items():
                pipe.sadd(set_key, member)
                pipe.delete(key_of(member))
                pipe.hset(key_of(member), mapping=data)
                pipe.expire(key_of(member), expiry)
            pipe.expire(set_key, expiry)
            pipe.set(generation_key(set_key), uuid.uuid4().hex, ex=expiry)
            pipe.execute()

    def _read(
        self, set_key: str, key_of: Callable[[str], str], parse: Callable[[str, dict], T]
    ) -> tuple[T, ...]:
        generation = self.redis.get(generation_key(set_key))
        memo = self._memo.get(set_key)
        if generation is not None and memo is not None and memo[0] == generation:
            return memo[1]
        ids = sorted(self.redis.smembers(set_key))
        with self.redis.pipeline(transaction=False) as pipe:
            for member in ids:
                pipe.hgetall(key_of(member))
            replies = pipe.execute()
        items = tuple(
            parse(member, data) for member, data in zip(ids, replies, strict=True) if data
        )
        if generation is not None:
            self._memo[set_key] = (generation, items)
        return items
