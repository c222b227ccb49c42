"""A small client of pudding's HTTP API (the routes of pudding.web), on the stdlib."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from pudding.client.errors import APIError, ExitCode


def _details(raw: bytes) -> str:
    """The API's `{"errors": [{"details": …}]}` as one line, else the body's text."""
    try:
        errors = json.loads(raw)["errors"]
        return "; ".join(str(error["details"]) for error in errors)
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip() or "(no details)"


# A 503 means Redis is briefly unavailable; the API asks to come back after Retry-After.
ATTEMPTS_WHEN_BUSY = 3
MAX_RETRY_AFTER = 5.0


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class PuddingAPI:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> bytes:
        """The response body; APIError for an error status or no answer.

        A 503 is tried again, twice: every request the CLI makes is safe to repeat (a
        build carries its id, so a repeated POST returns the same build)."""
        for _ in range(ATTEMPTS_WHEN_BUSY - 1):
            try:
                return self._request_once(method, path, query, body)
            except APIError as error:
                if error.status != 503:
                    raise
                time.sleep(min(error.retry_after or 1.0, MAX_RETRY_AFTER))
        return self._request_once(method, path, query, body)

    def _request_once(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
    ) -> bytes:
        url = self.url + path
        params = {name: value for name, value in (query or {}).items() if value}
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json",
                     "User-Agent": "pudding-cli"},
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            failure = APIError.from_status(error.code, _details(error.read()))
            failure.retry_after = _seconds(error.headers.get("Retry-After"))
            raise failure from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise APIError(
                f"cannot reach the API at {self.url}: {reason}", ExitCode.UNAVAILABLE
            ) from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        raw = self.request(method, path, **kwargs)
        try:
            return json.loads(raw)
        except ValueError:
            raise APIError(
                f"the API at {self.url} did not answer JSON: {raw[:80]!r}", ExitCode.UNAVAILABLE
            ) from None

    def create_build(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        body = {"instance_builds": dict(fields)}
        return self.json("POST", "/instance-builds", body=body)["instance_builds"][0]

    def builds(self, limit: int) -> list[dict[str, Any]]:
        return self.json("GET", "/instance-builds", query={"limit": str(limit)})[
            "instance_builds"
        ]

    def build(self, build_id: str) -> dict[str, Any]:
        return self.json("GET", f"/instance-builds/{quote(build_id, safe='')}")[
            "instance_builds"
        ][0]

    def instances(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.json("GET", "/instances", query=filters)["instances"]

    def images(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.json("GET", "/images", query=filters)["images"]

    def terminate(self, instance_id: str, slack_channel: str = "") -> None:
        self.request("DELETE", f"/instances/{quote(instance_id, safe='')}",
                     query={"slack-channel": slack_channel})

    def init_script(self, build_id: str) -> bytes:
        return self.request("GET", f"/init-scripts/{quote(build_id, safe='')}")
