"""The EC2 inventory the worker caches: instances (listed, shown, terminated) and images."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import falcon

from pudding.config import WebConfig
from pudding.jobs.names import INSTANCE_TERMINATION_JOB
from pudding.sidekiq.client import Client
from pudding.store.cache import Cache
from pudding.web.errors import JSONAPI, encode, render
from pudding.web.fields import checked_channel

INSTANCE_FILTERS = ("env", "site", "role", "queue")


class RenderedLists:
    """Bodies rendered from one cache snapshot, by filter.

    The cache hands back the very same tuple until the worker writes a new generation,
    so each (snapshot, filter) body is rendered once, not on every request.
    """

    MAX_BODIES = 64

    def __init__(self) -> None:
        self._memo: tuple[Any, dict[Hashable, bytes]] = (None, {})

    def body(self, snapshot: Any, key: Hashable, render: Callable[[], Any]) -> bytes:
        memo = self._memo
        if memo[0] is not snapshot:
            memo = self._memo = (snapshot, {})
        bodies = memo[1]
        body = bodies.get(key)
        if body is None:
            if len(bodies) >= self.MAX_BODIES:
                bodies.clear()
            body = bodies[key] = encode(render())
        return body


class Instances:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rendered = RenderedLists()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        wanted = tuple((name, req.get_param(name)) for name in INSTANCE_FILTERS
                       if req.get_param(name))
        instances = self.cache.instances()
        resp.content_type = JSONAPI
        resp.data = self.rendered.body(instances, wanted, lambda: {"instances": [
            instance.to_json() for instance in instances
            if all(getattr(instance, name) == value for name, value in wanted)
        ]})


class Instance:
    def __init__(self, config: WebConfig, cache: Cache, jobs: Client) -> None:
        self.config = config
        self.cache = cache
        self.jobs = jobs

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        instance = self.cache.instance(instance_id)
        if instance is None:
            raise falcon.HTTPNotFound(description=f"no such instance: {instance_id}")
        render(resp, {"instances": [instance.to_json()]})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        """Enqueue the termination of a cached (so pudding-known, running) instance."""
        if self.cache.instance(instance_id) is None:
            raise falcon.HTTPNotFound(description=f"no such instance: {instance_id}")
        channel = (checked_channel(req.get_param("slack-channel") or "")
                   or self.config.default_slack_channel)
        self.jobs.push({
            "class": INSTANCE_TERMINATION_JOB,
            "args": [instance_id, channel],
            "queue": self.config.queues.instance_terminations,
            "retry": True,
        })
        render(resp, {"ok": "working on that"}, 202)


class Images:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rendered = RenderedLists()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """`active=true` keeps active images, any other value inactive ones."""
        active = req.get_param("active")
        role = req.get_param("role")
        images = self.cache.images()
        resp.content_type = JSONAPI
        resp.data = self.rendered.body(images, (active, role), lambda: {"images": [
            image.to_json() for image in images
            if (not active or image.active == (active == "true"))
            and (not role or image.role == role)
        ]})
