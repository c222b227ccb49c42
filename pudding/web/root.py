"""The service's own routes: greeting, shutdown, kaboom, debug vars, the OpenAPI document."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import falcon

from pudding.web.errors import render
from pudding.web.middleware import PUBLIC

KABOOM = "simulated kaboom ʕノ•ᴥ•ʔノ ︵ ┻━┻"

# Env vars the Go original showed at /debug/vars; none of them is a secret.
DEBUG_ENV = (
    "VERSION", "REVISION", "GENERATED", "DYNO", "PORT", "DEBUG", "HOSTNAME",
    "PUDDING_ADDR", "PUDDING_WEB_HOSTNAME", "PUDDING_DEFAULT_SLACK_CHANNEL",
    "PUDDING_INSTANCE_BUILDS_QUEUE_NAME", "PUDDING_INSTANCE_TERMINATIONS_QUEUE_NAME",
)


class Root:
    """`GET /` greets (the worker's keepalive hits it); `DELETE /` shuts the server down."""

    auth = {"GET": PUBLIC}

    def __init__(self, shutdown: Callable[[], None]) -> None:
        self._shutdown = shutdown

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = "ohai\n"

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        # The server stops accepting, lets open requests finish (this response too),
        # then exits 0; calling it again meanwhile is harmless.
        self._shutdown()
        resp.status = falcon.HTTP_204


class Kaboom:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError(KABOOM)


class DebugVars:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        env = {name: os.environ[name] for name in DEBUG_ENV if name in os.environ}
        render(resp, {"env": env})


class OpenAPIDocument:
    auth = PUBLIC

    def __init__(self, document: dict[str, Any]) -> None:
        self._body = json.dumps(document, indent=2) + "\n"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json"
        resp.text = self._body
