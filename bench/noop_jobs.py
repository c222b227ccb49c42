"""The no-op job for bench/throughput, loaded by our worker with `-r noop_jobs`.

Its Sidekiq class name is that of bench/jobs.rb's NoopJob, so both engines run the
very same payloads.
"""

from __future__ import annotations

from typing import Any

from pudding.sidekiq.job import Job


class NoopJob(Job):
    sidekiq_options = {"queue": "bench"}

    def perform(self, *args: Any) -> None:
        pass
