"""Enqueueing jobs: Sidekiq's `Client.push`, `push_bulk`, `perform_in` and `perform_at`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis

from pudding.sidekiq import ids, payload
from pudding.sidekiq.job import DEFAULT_OPTIONS, Job

# Ruby treats an `at` below this as an interval in seconds, not a timestamp.
RELATIVE_LIMIT = 1_000_000_000


class Client:
    """Writes jobs to Redis in Sidekiq's exact JSON and key layout."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def perform_async(self, job: type[Job] | str, *args: Any) -> str:
        return self._push_one({"class": job, "args": list(args)})

    def perform_in(self, seconds: float, job: type[Job] | str, *args: Any) -> str:
        return self.perform_at(payload.now() + seconds, job, *args)

    def perform_at(self, at: float, job: type[Job] | str, *args: Any) -> str:
        item: dict[str, Any] = {"class": job, "args": list(args)}
        if at > payload.now():
            item["at"] = at
        return self._push_one(item)

    def push(self, item: dict[str, Any]) -> str:
        """Push one job; `item` is a Sidekiq job hash ("class", "args", options, "at")."""
        return self._push_one(item)

    def push_bulk(self, item: dict[str, Any]) -> list[str]:
        """Push many jobs of one class: `item["args"]` is a list of argument lists.

        They share `created_at` and `enqueued_at` and go to Redis in one LPUSH.
        """
        all_args = item.get("args")
        if not isinstance(all_args, list) or not all(isinstance(a, list) for a in all_args):
            raise ValueError("push_bulk takes 'args' as a list of argument lists")
        if not all_args:
            return []
        at = item.get("at")
        if isinstance(at, list) and len(at) != len(all_args):
            raise ValueError("push_bulk: 'at' must have one time per job")
        created_at = payload.now()
        jobs = []
        for index, args in enumerate(all_args):
            one = {**item, "args": args, "created_at": item.get("created_at", created_at)}
            one.pop("jid", None)
            if isinstance(at, list):
                one["at"] = at[index]
            jobs.append(normalize(one))
        self._write(jobs)
        return [job["jid"] for job in jobs]

    def _push_one(self, item: dict[str, Any]) -> str:
        job = normalize(item)
        self._write([job])
        return job["jid"]

    def _write(self, jobs: Sequence[dict[str, Any]]) -> None:
        scheduled = [job for job in jobs if "at" in job]
        immediate = [job for job in jobs if "at" not in job]
        with self.redis.pipeline(transaction=True) as pipe:
            if scheduled:
                pipe.zadd(
                    "schedule", {payload.dump(_without_at(job)): _run_at(job) for job in scheduled}
                )
            if immediate:
                enqueued_at = payload.now()
                by_queue: dict[str, list[str]] = {}
                for job in immediate:
                    job["enqueued_at"] = enqueued_at
                    by_queue.setdefault(job["queue"], []).append(payload.dump(job))
                for queue, raws in by_queue.items():
                    pipe.sadd("queues", queue)
                    pipe.lpush(f"queue:{queue}", *raws)
            pipe.execute()


def normalize(item: dict[str, Any]) -> dict[str, Any]:
    """Validate a job hash and fill in what Ruby's client fills in."""
    if "class" not in item or "args" not in item:
        raise ValueError(f"a job needs 'class' and 'args': {item!r}")
    job_class = item["class"]
    options: dict[str, Any] = dict(DEFAULT_OPTIONS)
    if isinstance(job_class, type) and issubclass(job_class, Job):
        options = job_class.get_sidekiq_options()
        job_class = job_class.class_name()
    if not isinstance(job_class, str) or not job_class:
        raise ValueError(f"job 'class' must be a Job subclass or a class name, not {job_class!r}")
    if not isinstance(item["args"], list):
        raise ValueError(f"job 'args' must be a list, not {type(item['args']).__name__}")
    payload.check_native(item["args"])
    if "at" in item and (isinstance(item["at"], bool) or not isinstance(item["at"], int | float)):
        raise ValueError(f"job 'at' must be a number, not {item['at']!r}")
    if "tags" in item and not isinstance(item["tags"], list):
        raise ValueError("job 'tags' must be a list")
    job = {**options, **item, "class": job_class}
    if not isinstance(job["queue"], str) or not job["queue"]:
        raise ValueError(f"job 'queue' must be a non-empty string, not {job['queue']!r}")
    if not isinstance(job["retry"], bool | int):
        raise ValueError(f"job 'retry' must be true, false or a number, not {job['retry']!r}")
    job.setdefault("jid", ids.new_jid())
    job.setdefault("created_at", payload.now())
    return job


def _run_at(job: dict[str, Any]) -> float:
    at = float(job["at"])
    return payload.now() + at if at < RELATIVE_LIMIT else at


def _without_at(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if key not in ("at", "enqueued_at")}
