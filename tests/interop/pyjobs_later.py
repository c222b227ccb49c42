"""A job class that only a worker started with `-r pyjobs_later` knows.

To a worker that loads `pyjobs` alone, `LateReportJob` is an unknown class, as a class
deployed to some workers and not yet to others is.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pyjobs import _record

from pudding.sidekiq.job import Job


class LateReportJob(Job):
    sidekiq_options: ClassVar[dict[str, Any]] = {"queue": "py"}

    def perform(self, *args: Any) -> None:
        _record(self, args)
