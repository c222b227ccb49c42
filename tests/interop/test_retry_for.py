"""`retry_for` (Sidekiq 7.1.3+) on jobs Ruby's client pushes, in both semantics our worker
offers: 7.x (count limit and deadline both apply) and 8.1 (a deadline replaces the count)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from harness import ran, wait_until

pytestmark = pytest.mark.ruby

RETRY = 5


@dataclass(frozen=True)
class Case:
    """A job as Ruby pushes it, and where each semantics sends it after the failure to come."""

    label: str
    retry_count: int | None  # None: the coming failure is its first
    failed_ago: float  # seconds from its first failure to the push
    retry_for: int | None
    mode_7: str  # "retry", "dead" or "gone"
    mode_8: str
    dead: bool = True
    in_ms: bool = False  # `failed_at` as Sidekiq 8 writes it: integer milliseconds

    def job(self, now: float) -> dict[str, Any]:
        job: dict[str, Any] = {"class": "AlwaysFailJob", "queue": "py", "args": [self.label],
                               "retry": RETRY}
        if self.retry_for is not None:
            job["retry_for"] = self.retry_for
        if self.retry_count is not None:
            failed_at = now - self.failed_ago
            job |= {"retry_count": self.retry_count,
                    "failed_at": int(failed_at * 1000) if self.in_ms else failed_at}
        if not self.dead:
            job["dead"] = False
        return job


# With one processor the jobs run in push order; the last one leaves a visible outcome in
# every mode, so seeing it means every job before it is done.
CASES = [
    Case("deadline passed, no dead set", 1, 7200, 3600, "gone", "gone", dead=False),
    Case("deadline passed, retries left", 1, 7200, 3600, "dead", "dead"),
    Case("deadline passed, failed_at in ms", 1, 7200, 3600, "dead", "dead", in_ms=True),
    Case("count spent, deadline ahead", RETRY - 1, 60, 10**6, "dead", "retry"),
    Case("count spent, no deadline", RETRY - 1, 60, None, "dead", "dead"),
    Case("first failure, deadline ahead", None, 0, 3600, "retry", "retry"),
    Case("deadline ahead, retries left", 1, 1800, 3600, "retry", "retry"),
]

READ_SETS = """
%w[RetrySet DeadSet].to_h { |set|
  [set, Sidekiq.const_get(set).new.map { |e|
    { "item" => e.item, "score" => e.score,
      "types" => e.item.transform_values { |v| v.class.name } }
  }]
}
"""


def delay_range(count: int) -> tuple[int, int]:
    """Bounds of the seconds from a failure to its retry: 6.4.1/7 `delay_for` is
    count**4 + 15 + rand(10) * (count + 1)."""
    return count**4 + 15, count**4 + 15 + 9 * (count + 1)


@pytest.mark.parametrize(
    ("flags", "env_mode", "mode"),
    [
        pytest.param(["--retry-for-mode", "7"], None, 7, id="flag-7"),
        pytest.param(["--retry-for-mode", "8"], None, 8, id="flag-8"),
        pytest.param([], None, 7, id="default-is-7"),
        pytest.param([], "8", 8, id="env-8"),
    ],
)
def test_retry_for_with_ruby_as_producer(
    r: redis.Redis, ruby, pudding_worker, monkeypatch: pytest.MonkeyPatch,
    flags: list[str], env_mode: str | None, mode: int,
) -> None:
    """Ruby apps set `retry_for`; which of its two meanings applies is the worker's choice."""
    if env_mode is None:
        monkeypatch.delenv("SIDEKIQ_RETRY_FOR_MODE", raising=False)
    else:
        monkeypatch.setenv("SIDEKIQ_RETRY_FOR_MODE", env_mode)
    before = time.time()
    jobs = {case.label: case.job(before) for case in CASES}
    ruby('ARGS["jobs"].each { |job| Sidekiq::Client.push(job) }', jobs=list(jobs.values()))
    # Ruby 6.4.1's client knows nothing of `retry_for` and keeps it, as every key it does
    # not know.
    queued = {job["args"][0]: job for job in map(json.loads, r.lrange("queue:py", 0, -1))}
    for label, job in jobs.items():
        assert {key: queued[label].get(key) for key in job} == job

    worker = pudding_worker(queues=["py"], concurrency=1, extra_args=flags)
    outcome = {case.label: case.mode_7 if mode == 7 else case.mode_8 for case in CASES}
    visible = sum(place != "gone" for place in outcome.values())
    # More entries than expected is a wrong outcome: the assertions below say which.
    wait_until(lambda: len(ran(r, "py:ran")) == len(CASES)
               and r.zcard("retry") + r.zcard("dead") >= visible, 20,
               "every job to fail once", alive=[worker.process])
    assert Counter(run["args"][0] for run in ran(r, "py:ran")) == Counter(jobs.keys())
    assert r.llen("queue:py") == 0

    sets = ruby(READ_SETS)
    found = {entry["item"]["args"][0]: (place, entry)
             for place, key in (("retry", "RetrySet"), ("dead", "DeadSet"))
             for entry in sets[key]}
    assert {label: place for label, (place, _) in found.items()} == {
        label: place for label, place in outcome.items() if place != "gone"
    }
    after = time.time()
    for case in CASES:
        if outcome[case.label] == "gone":
            continue
        place, entry = found[case.label]
        item = entry["item"]
        count = 0 if case.retry_count is None else case.retry_count + 1
        assert (item["retry_count"], item["error_class"], item.get("retry_for")) == (
            count, "RuntimeError", case.retry_for,
        ), case
        assert entry["types"]["failed_at"] == ("Integer" if case.in_ms else "Float")
        if case.retry_count is None:
            assert before <= item["failed_at"] <= after
            this_failure = item["failed_at"]
        else:
            assert item["failed_at"] == jobs[case.label]["failed_at"]
            this_failure = item["retried_at"]
        if place == "retry":
            low, high = delay_range(count)
            assert low - 0.5 <= entry["score"] - this_failure <= high + 0.5, case
        else:
            assert before <= entry["score"] <= after, case
