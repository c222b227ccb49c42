"""Request ids, the access log, and authentication.

Auth is declared per resource with an `auth` attribute:

- `PUBLIC`: no credentials needed,
- `TOKEN` (the default): `Authorization: token <T>` or `token=<T>`,
- `BUILD`: the token, or HTTP basic auth with the one-time password of the build named
  by the route's `build_id` (what cloud-init uses for its script and callback).

`auth` may also map methods to policies (`{"GET": PUBLIC}`), the others being `TOKEN`.

Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import falcon
import structlog

from pudding.sidekiq import ids
from pudding.store.init_scripts import InitScripts
from pudding.web.fields import PARAMS

PUBLIC, TOKEN, BUILD = "public", "token", "build"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASIC = re.compile(r"(?i)basic[ =]")

log = structlog.get_logger("pudding.web.access")


REDACTED = "[redacted]"


def loggable_query(query: str) -> str | None:
    """The query string with the values of parameters the API does not read redacted: a
    client may put a token or a password anywhere."""
    if not query:
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(name, value if name in PARAMS else REDACTED)
                      for name, value in pairs], safe="#@[]") or REDACTED


class AccessLog:
    """Gives each request an id (`X-Request-Id`, kept if the client sent a sane one) and
    logs one line per request when it is done, with the auth token cut out of every
    value the client chose (sent by mistake in a parameter, the user agent, ...)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _scrub(self, value: str | None) -> str | None:
        return value.replace(self._token, REDACTED) if value else value

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id") or ""
        sane = _REQUEST_ID.fullmatch(given) and self._token not in given
        req.context.request_id = given if sane else ids.new_uuid().hex
        req.context.started = time.perf_counter()
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        log.info(
            "request",
            request_id=req.context.request_id,
            method=req.method,
            path=self._scrub(req.path),
            query=self._scrub(loggable_query(req.query_string)),
            status=resp.status_code,
            duration_ms=round((time.perf_counter() - req.context.started) * 1000, 2),
            remote_addr=req.remote_addr,
            user_agent=self._scrub(req.user_agent),
        )


class Auth:
    def __init__(self, token: str, scripts: InitScripts) -> None:
        self._token = token.encode()
        self._scripts = scripts

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, str]
    ) -> None:
        # Unknown routes and unsupported methods get their 404/405 without credentials.
        if resource is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return
        policy = getattr(resource, "auth", TOKEN)
        if isinstance(policy, dict):
            policy = policy.get(req.method, TOKEN)
        if policy == PUBLIC:
            return
        header = req.get_header("Authorization")
        if not header:
            raise falcon.HTTPUnauthorized(
                description='authentication required: send "Authorization: token <token>"',
                challenges=["token"],
            )
        if self._token_ok(header):
            return
        if policy == BUILD and self._build_password_ok(header, params.get("build_id", "")):
            return
        raise falcon.HTTPForbidden(description="the credentials are not valid here")

    def _token_ok(self, header: str) -> bool:
        if not header.startswith(("token ", "token=")):
            return False
        return hmac.compare_digest(header[6:].encode(), self._token)

    def _build_password_ok(self, header: str, build_id: str) -> bool:
        if not build_id or not _BASIC.match(header):
            return False
        try:
            decoded = base64.b64decode(header[6:].replace("\r", "").replace("\n", ""),
                                       validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        _user, colon, password = decoded.partition(":")
        if not colon:
            return False
        stored = self._scripts.password(build_id)
        return stored is not None and hmac.compare_digest(
            stored.strip().encode(), password.strip().encode()
        )
