"""The EC2 inventory cache: the worker's sync writes it, the API reads it.

Keys as in the Go original: `pudding:instances` (set of ids) with one hash
`pudding:instance:<iid>` each, and `pudding:images` with `pudding:image:<ami>`.
Unlike the original, a write replaces each hash whole (no stale tag fields), and readers
skip ids whose hash has expired instead of returning empty objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from redis import Redis

INSTANCES_KEY = "pudding:instances"
IMAGES_KEY = "pudding:images"
DEFAULT_EXPIRY = 90


def instance_key(instance_id: str) -> str:
    return f"pudding:instance:{instance_id}"


def image_key(image_id: str) -> str:
    return f"pudding:image:{image_id}"


@dataclass(frozen=True)
class Instance:
    """One running instance; field order is the API's JSON key order."""

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
        # The original's key order: name first, then id.
        data = asdict(self)
        return {"name": data.pop("name"), **data}

    def to_hash(self) -> dict[str, str]:
        data = asdict(self)
        data["instance_id"] = data.pop("id")
        return data

    @classmethod
    def from_hash(cls, instance_id: str, data: dict[str, str]) -> Instance:
        known = {f.name for f in fields(cls)} - {"id"}
        return cls(id=instance_id, **{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Image:
    image_id: str
    role: str = ""
    active: bool = False
    name: str = ""
    state: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_hash(self) -> dict[str, str]:
        data = {k: v for k, v in asdict(self).items() if k != "active"}
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

    def store_instances(self, instances: Iterable[Instance], expiry: int = DEFAULT_EXPIRY) -> None:
        """Replace the cached instances with these, atomically."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(INSTANCES_KEY)
            for instance in instances:
                key = instance_key(instance.id)
                pipe.sadd(INSTANCES_KEY, instance.id)
                pipe.delete(key)
                pipe.hset(key, mapping=instance.to_hash())
                pipe.expire(key, expiry)
            pipe.expire(INSTANCES_KEY, expiry)
            pipe.execute()

    def remove_instance(self, instance_id: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(INSTANCES_KEY, instance_id)
            pipe.delete(instance_key(instance_id))
            pipe.execute()

    def store_images(self, images: Iterable[Image], expiry: int = DEFAULT_EXPIRY) -> None:
        """Replace the cached images with these, atomically."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(IMAGES_KEY)
            for image in images:
                key = image_key(image.image_id)
                pipe.sadd(IMAGES_KEY, image.image_id)
                pipe.delete(key)
                pipe.hset(key, mapping=image.to_hash())
                pipe.expire(key, expiry)
            pipe.expire(IMAGES_KEY, expiry)
            pipe.execute()

    def instance(self, instance_id: str) -> Instance | None:
        """The cached instance, if it is in the set and its hash has not expired."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(INSTANCES_KEY, instance_id)
            pipe.hgetall(instance_key(instance_id))
            member, data = pipe.execute()
        return Instance.from_hash(instance_id, data) if member and data else None

    def instances(self) -> list[Instance]:
        """All cached instances, ordered by id."""
        return [Instance.from_hash(*item) for item in self._hashes(INSTANCES_KEY, instance_key)]

    def images(self) -> list[Image]:
        """All cached images, ordered by id."""
        return [Image.from_hash(*item) for item in self._hashes(IMAGES_KEY, image_key)]

    def _hashes(
        self, set_key: str, key_of: Callable[[str], str]
    ) -> list[tuple[str, dict[str, str]]]:
        """(member, hash) for each member of the set whose hash still exists."""
        ids = sorted(self.redis.smembers(set_key))
        with self.redis.pipeline(transaction=False) as pipe:
            for member in ids:
                pipe.hgetall(key_of(member))
            replies = pipe.execute()
        return [(member, data) for member, data in zip(ids, replies, strict=True) if data]
