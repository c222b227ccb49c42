"""Instance builds: one record per build, with its state and the history of its states.

The web creates a build (and, in the same transaction, pushes the Sidekiq job that
carries its id); the worker reads it with `get` and records progress with `update` and
`transition`. Keys:

- `pudding:instance-build:<id>`: hash of the `Build` fields (all strings),
- `pudding:instance-build:<id>:history`: list of JSON `{"state", "at"[, "error"]}`,
- `pudding:instance-builds`: sorted set of ids, scored by creation time (Unix seconds).

Records expire `retention` seconds after their last change.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from pudding.sidekiq import payload
from pudding.sidekiq.client import normalize
from pudding.templates import DEFAULT_NAME_TEMPLATE

PENDING, STARTED, FINISHED, FAILED = "pending", "started", "finished", "failed"
STATES = (PENDING, STARTED, FINISHED, FAILED)
DEFAULT_ROLE = "worker"
INDEX_KEY = "pudding:instance-builds"
DEFAULT_RETENTION = 30 * 24 * 3600


def build_key(build_id: str) -> str:
    return f"pudding:instance-build:{build_id}"


def history_key(build_id: str) -> str:
    return f"pudding:instance-build:{build_id}:history"


def timestamp(at: float | None = None) -> str:
    """`at` (Unix seconds; default now) as RFC 3339 UTC with milliseconds."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UnknownBuild(KeyError):
    """No build has this id (or its record has expired)."""


@dataclass(frozen=True)
class Build:
    id: str
    site: str
    env: str
    queue: str
    instance_type: str
    count: int
    role: str = DEFAULT_ROLE
    ami: str = ""
    name_template: str = DEFAULT_NAME_TEMPLATE
    slack_channel: str = ""
    state: str = PENDING
    instance_id: str = ""
    security_group_id: str = ""
    error: str = ""
    jid: str = ""
    created_at: str = ""
    updated_at: str = ""
    history: tuple[dict[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The API's shape: the Go original's keys and order first, then the new ones."""
        return {
            "role": self.role, "site": self.site, "env": self.env, "ami": self.ami,
            "instance_id": self.instance_id, "name_template": self.name_template,
            "instance_type": self.instance_type, "slack_channel": self.slack_channel,
            "count": self.count, "queue": self.queue, "state": self.state, "id": self.id,
            "jid": self.jid, "security_group_id": self.security_group_id, "error": self.error,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "history": list(self.history),
        }

    def to_hash(self) -> dict[str, str]:
        return {name: str(value) for name, value in vars(self).items() if name != "history"}

    @classmethod
    def from_hash(cls, data: dict[str, str], history: list[str]) -> Build:
        known = {f.name for f in fields(cls)} - {"history", "count"}
        return cls(
            count=int(data.get("count") or 0),
            history=tuple(orjson.loads(entry) for entry in history),
            **{key: value for key, value in data.items() if key in known},
        )


# One round trip, all or nothing: the build, its first history entry, its place in the
# index and (when ARGV[6] names a queue) its Sidekiq job, unless the id exists already.
# KEYS: build, history, index[, Sidekiq's "queues", "queue:<name>"]
# ARGV: retention, score, cutoff score, id, history entry, queue name, job JSON,
#       the build's fields as one JSON object (one argument, not 36: cheaper to send)
CREATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for name, value in pairs(cjson.decode(ARGV[8])) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[6])
  redis.call('LPUSH', KEYS[5], ARGV[7])
end
return 1
"""


class BuildStore:
    def __init__(self, redis: Redis, retention: int = DEFAULT_RETENTION) -> None:
        self.redis = redis
        self.retention = retention
        self._create = redis.register_script(CREATE_SCRIPT)

    def get(self, build_id: str) -> Build | None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(build_key(build_id))
            pipe.lrange(history_key(build_id), 0, -1)
            data, history = pipe.execute()
        return Build.from_hash(data, history) if data else None

    def create(self, build: Build, job: dict[str, Any] | None = None) -> tuple[Build, bool]:
        """Store `build` unless its id exists; (the stored build, whether it is new).

        `job` is a Sidekiq job hash pushed in the same transaction, so a build gets its
        job exactly once however often the same id is posted.
        """
        score = time.time()
        now = timestamp(score)
        entry = {"state": PENDING, "at": now}
        keys = [build_key(build.id), history_key(build.id), INDEX_KEY]
        args: list[Any] = [self.retention, score, score - self.retention, build.id,
                           orjson.dumps(entry), "", ""]
        if job is not None:
            # What pudding.sidekiq's Client writes for an immediate job.
            job = {**normalize(job), "enqueued_at": score}
            keys += ["queues", f"queue:{job['queue']}"]
            args[5:7] = [job["queue"], payload.dump(job)]
        created = replace(build, state=PENDING, created_at=now, updated_at=now,
                          jid=job["jid"] if job else build.jid, history=(entry,))
        args.append(orjson.dumps(created.to_hash()))
        if self._run_create(keys, args):
            return created, True
        existing = self.get(build.id)
        if existing is None:  # expired between the check and the read: a fresh start
            return self.create(build, job)
        return existing, False

    def _run_create(self, keys: list[str], args: list[Any]) -> int:
        # redis-py's Script call copies its keys and arguments and imports a class on
        # every call; EVALSHA directly, and let the Script load it when Redis lost it.
        try:
            return self.redis.evalsha(self._create.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self._create(keys=keys, args=args)

    def update(self, build_id: str, **changes: Any) -> Build:
        """Set fields of an existing build (not its state: see `transition`)."""
        if "state" in changes:
            raise ValueError("change a build's state with transition()")
        return self._change(build_id, changes, None)

    def transition(
        self, build_id: str, state: str, *, unless: Collection[str] = (), **changes: Any
    ) -> Build:
        """Move a build to `state` (setting `changes` too) and record it in its history.

        With `unless`, a build whose state is one of those is left as it is (checked in
        the same transaction): a late worker must not undo the instance's `finished`.
        """
        if state not in STATES:
            raise ValueError(f"unknown build state {state!r}")
        entry = {"state": state, "at": timestamp()}
        if changes.get("error"):
            entry["error"] = str(changes["error"])
        return self._change(build_id, {**changes, "state": state}, entry, unless)

    def recent(self, limit: int = 50) -> list[Build]:
        """The newest builds first."""
        ids = self.redis.zrevrange(INDEX_KEY, 0, limit - 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for build_id in ids:
                pipe.hgetall(build_key(build_id))
                pipe.lrange(history_key(build_id), 0, -1)
            replies = pipe.execute()
        pairs = zip(replies[::2], replies[1::2], strict=True)
        return [Build.from_hash(data, history) for data, history in pairs if data]

    def _change(
        self,
        build_id: str,
        changes: dict[str, Any],
        entry: dict[str, str] | None,
        unless: Collection[str] = (),
    ) -> Build:
        settable = {f.name for f in fields(Build)} - {"id", "history", "created_at", "updated_at"}
        if refused := sorted(set(changes) - settable):
            raise ValueError(f"cannot set {refused} on a build")
        now = timestamp()
        values = {key: str(value) for key, value in changes.items()}

        def write(pipe: Pipeline) -> None:
            if not pipe.exists(build_key(build_id)):
                raise UnknownBuild(build_id)
            if unless and pipe.hget(build_key(build_id), "state") in unless:
                return
            pipe.multi()
            pipe.hset(build_key(build_id), mapping={**values, "updated_at": now})
            if entry is not None:
                pipe.rpush(history_key(build_id), orjson.dumps(entry))
            self._expire(pipe, build_id)

        self.redis.transaction(write, build_key(build_id))
        build = self.get(build_id)
        if build is None:
            raise UnknownBuild(build_id)
        return build

    def _expire(self, pipe: Pipeline, build_id: str) -> None:
        pipe.expire(build_key(build_id), self.retention)
        pipe.expire(history_key(build_id), self.retention)

