"""JSON rendering and error responses: `{"errors": [{"details": ...}]}`, never a traceback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import falcon
import orjson
import redis
import structlog

import pudding.sentry

JSONAPI = "application/vnd.api+json"

log = structlog.get_logger("pudding.web")


def encode(body: Any) -> bytes:
    """`body` as JSON: UTF-8, one line and a newline."""
    return orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)


def render(resp: falcon.Response, body: Any, status: int = 200) -> None:
    """Write `body` as JSON with the JSON:API type."""
    resp.status = status
    resp.content_type = JSONAPI
    resp.data = encode(body)


def error_body(*details: str) -> dict[str, list[dict[str, str]]]:
    return {"errors": [{"details": detail} for detail in details]}


class ValidationFailed(falcon.HTTPBadRequest):
    """A 400 carrying several messages, one `errors` entry each."""

    def __init__(self, details: list[str]) -> None:
        super().__init__(description="; ".join(details))
        self.details = details


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    details = getattr(error, "details", None) or [error.description or error.title]
    resp.content_type = JSONAPI
    resp.data = encode(error_body(*details))


class UnexpectedErrors:
    """Error handlers: Redis outages become 503, anything else a bare 500."""

    def __init__(self, report: Callable[[BaseException], object] | None = None) -> None:
        self.report = report

    def redis_down(
        self, req: falcon.Request, resp: falcon.Response, error: Exception, params: dict
    ) -> None:
        log.warning("redis unavailable", error=type(error).__name__,
                    request_id=req.context.get("request_id"))
        resp.set_header("Retry-After", "1")
        render(resp, error_body("redis is unavailable, try again shortly"), 503)

    def crash(
        self, req: falcon.Request, resp: falcon.Response, error: Exception, params: dict
    ) -> None:
        request_id = req.context.get("request_id", "")
        log.error("request failed", request_id=request_id, exc_info=error)
        if self.report is not None:
            self.report(error)
        render(resp, error_body(f"internal server error (request {request_id})"), 500)

    def install(self, app: falcon.App) -> None:
        app.set_error_serializer(serialize_error)
        app.add_error_handler(Exception, self.crash)
        app.add_error_handler((redis.ConnectionError, redis.TimeoutError), self.redis_down)


def sentry_reporter(
    dsn: str, secrets: Sequence[str] = ()
) -> Callable[[BaseException], object] | None:
    """What reports a 500 to Sentry when a DSN is set (pudding.sentry scrubs it)."""
    if not dsn:
        return None
    return pudding.sentry.start(dsn, "web", secrets)
