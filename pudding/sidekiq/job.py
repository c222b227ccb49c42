"""Job classes: the code a worker runs, and the options it is enqueued with.

A job is a subclass of `Job` with a `perform` method. Its Sidekiq class name (the
`class` field of the payload) is the Python class name unless `sidekiq_class`
says otherwise, so a Python job can stand in for a Ruby class such as
`Billing::ChargeJob`. `sidekiq_options` mirrors Ruby's `sidekiq_options`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, ClassVar

DEFAULT_OPTIONS: dict[str, Any] = {"retry": True, "queue": "default"}


class Job:
    """Base class of every job. Subclass it, define `perform(*args)`."""

    sidekiq_class: ClassVar[str | None] = None
    sidekiq_options: ClassVar[dict[str, Any]] = {}
    jid: str | None = None

    def perform(self, *args: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define perform()")

    @classmethod
    def class_name(cls) -> str:
        return cls.sidekiq_class or cls.__name__

    @classmethod
    def get_sidekiq_options(cls) -> dict[str, Any]:
        """The options of this class and its bases, nearest class winning."""
        merged = dict(DEFAULT_OPTIONS)
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("sidekiq_options", {}))
        return merged

    def retry_in(self, count: int, exc: BaseException) -> int | None:
        """Seconds until the next retry (Ruby's `sidekiq_retry_in`); None for the default."""
        return None

    def retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        """Called once when the last retry failed (Ruby's `sidekiq_retries_exhausted`)."""


class Registry:
    """Job classes by their Sidekiq class name: what a worker process can run.

    `factory` makes the job object for each run; by default the class is called with
    no arguments. A program whose jobs need services (clients, settings) passes a
    factory that hands them over, instead of keeping them in globals.
    """

    def __init__(
        self, jobs: Iterable[type[Job]] = (), factory: Callable[[type[Job]], Job] | None = None
    ) -> None:
        self._jobs: dict[str, type[Job]] = {}
        self.create: Callable[[type[Job]], Job] = factory or (lambda job_class: job_class())
        for job in jobs:
            self.register(job)

    @classmethod
    def from_modules(
        cls, names: Iterable[str], factory: Callable[[type[Job]], Job] | None = None
    ) -> Registry:
        """Import each module and register every Job subclass it holds."""
        registry = cls(factory=factory)
        for name in names:
            registry.register_module(importlib.import_module(name))
        return registry

    def register_module(self, module: ModuleType) -> None:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Job) and value is not Job:
                self.register(value)

    def register(self, job: type[Job]) -> None:
        name = job.class_name()
        existing = self._jobs.get(name)
        if existing is not None and existing is not job:
            raise ValueError(f"two job classes claim the Sidekiq class name {name!r}")
        self._jobs[name] = job

    def get(self, name: str) -> type[Job] | None:
        return self._jobs.get(name)

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)
