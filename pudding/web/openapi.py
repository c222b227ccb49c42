"""The OpenAPI 3 document of the API, served at `GET /openapi.json`."""

from __future__ import annotations

from typing import Any

from pudding.config import WebConfig
from pudding.web.builds import MAX_LIST
from pudding.web.fields import AMI, INSTANCE_ID, INSTANCE_TYPE, SLACK_CHANNEL, WORD

_CHANNEL = {"type": "string", "pattern": f"^({SLACK_CHANNEL})?$"}
_INSTANCE_ID = {"type": "string", "pattern": f"^{INSTANCE_ID}$"}

JSONAPI = "application/vnd.api+json"
_STRING = {"type": "string"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSONAPI: {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{description}"}


def _query(name: str, description: str, schema: dict[str, Any] = _STRING) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any] = _STRING) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(summary: str, responses: dict[str, Any], *, auth: str = "token",
               **extra: Any) -> dict[str, Any]:
    """An operation with the error responses every route of its kind can give."""
    operation: dict[str, Any] = {"summary": summary, **extra, "responses": dict(responses)}
    if auth != "public":
        build = [{"buildPassword": []}] if auth == "build" else []
        operation["security"] = [{"token": []}, *build]
        operation["responses"].update({"401": _error("Unauthorized"), "403": _error("Forbidden")})
    operation["responses"].setdefault("503", _error("RedisDown"))
    operation["responses"].setdefault("500", _error("InternalError"))
    return operation


def _list(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {
        key: {"type": "array", "items": _ref(item)}}}


def openapi_document(config: WebConfig) -> dict[str, Any]:
    nullable_string = {"type": "string", "nullable": True}
    build_id = _path("build_id")
    instance_id = _path("instance_id")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pudding",
            "version": "1",
            "description": "Builds and terminates EC2 instances on request. Every route but "
            "`GET /` and this document needs `Authorization: token <token>`.",
        },
        "paths": {
            "/": {
                "get": _operation("Greeting", {"200": {
                    "description": "ohai", "content": {"text/plain": {"schema": _STRING}}}},
                    auth="public"),
                "delete": _operation("Graceful shutdown: finish open requests, then exit 0", {
                    "204": {"description": "shutting down"}}),
            },
            "/kaboom": {"post": _operation("A deliberate crash, to test error reporting", {})},
            "/debug/vars": {"get": _operation("Whitelisted environment variables", {
                "200": _json({"type": "object", "required": ["env"], "properties": {
                    "env": {"type": "object", "additionalProperties": _STRING}}}, "vars")})},
            "/openapi.json": {"get": _operation("This document", {"200": {
                "description": "OpenAPI 3", "content": {"application/json": {
                    "schema": {"type": "object"}}}}}, auth="public")},
            "/instances": {"get": _operation(
                "Running instances, from the cache the worker keeps",
                {"200": _json(_list("instances", "Instance"), "instances")},
                parameters=[_query(name, f"only instances whose {name} is this")
                            for name in ("env", "site", "role", "queue")],
            )},
            "/instances/{instance_id}": {
                "parameters": [instance_id],
                "get": _operation("One cached instance", {
                    "200": _json(_list("instances", "Instance"), "a one-element list"),
                    "404": _error("NotFound")}),
                "delete": _operation("Terminate a cached instance (enqueues a job)", {
                    "202": _json({"type": "object", "required": ["ok"],
                                  "properties": {"ok": _STRING}}, "enqueued"),
                    "404": _error("NotFound")},
                    parameters=[_query("slack-channel", "where to report the termination",
                                       _CHANNEL)]),
            },
            "/images": {"get": _operation("Cached images", {
                "200": _json(_list("images", "Image"), "images")},
                parameters=[
                    _query("active", "`true`: active images; any other value: inactive ones"),
                    _query("role", "only images of this role")])},
            "/instance-builds": {
                "get": _operation("The newest builds first", {
                    "200": _json(_list("instance_builds", "Build"), "builds"),
                    "400": _error("BadRequest")},
                    parameters=[_query("limit", "how many", {
                        "type": "integer", "minimum": 1, "maximum": MAX_LIST})]),
                "post": _operation(
                    "Request an instance build (enqueues a job)",
                    {
                        "202": _json(_list("instance_builds", "Build"), "created"),
                        "200": _json(_list("instance_builds", "Build"),
                                     "a build with this client-chosen id exists already"),
                        "400": _error("BadRequest"),
                        "413": _error("TooLarge"),
                    },
                    parameters=[_query("slack-channel", "overrides `slack_channel`",
                                       _CHANNEL)],
                    requestBody={"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["instance_builds"],
                        "properties": {"instance_builds": _ref("BuildRequest")}}}}},
                ),
            },
            "/instance-builds/{build_id}": {
                "parameters": [build_id],
                "get": _operation("One build, with its state history", {
                    "200": _json(_list("instance_builds", "Build"), "a one-element list"),
                    "404": _error("NotFound")}, auth="build"),
                "patch": _operation(
                    "The instance's callback: `state=finished` marks the build finished, "
                    "tells Slack, and deletes the init script and its password",
                    {
                        "200": _json({"type": "object", "minProperties": 1,
                                      "additionalProperties": _STRING},
                                     '`{"sure": "why not"}`, or `{"no": "op"}` '
                                     "for any other state"),
                        "400": _error("BadRequest"),
                        "404": _error("NotFound"),
                        "413": _error("TooLarge"),
                    },
                    auth="build",
                    parameters=[_query("state", "`finished`, or anything (a no-op)"),
                                _query("instance-id", "the instance that finished",
                                       _INSTANCE_ID),
                                _query("slack-channel", "where to report it", _CHANNEL)],
                    requestBody={"required": False, "content": {
                        "application/x-www-form-urlencoded": {"schema": {
                            "type": "object", "properties": {
                                "state": _STRING,
                                "instance-id": _INSTANCE_ID,
                                "slack-channel": _CHANNEL}}}}},
                ),
            },
            "/init-scripts/{build_id}": {
                "parameters": [build_id],
                "get": _operation("The build's cloud-init script, byte for byte", {
                    "200": {"description": "the script", "content": {
                        "text/x-shellscript": {"schema": _STRING}}},
                    "404": _error("NotFound")}, auth="build"),
            },
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "`token <token>` (or `token=<token>`)"},
                "buildPassword": {"type": "http", "scheme": "basic", "description":
                                  "user `x`, the build's one-time password"},
            },
            "responses": {
                "BadRequest": _json(_ref("Errors"), "the request is malformed or invalid"),
                "Unauthorized": {**_json(_ref("Errors"), "no credentials"), "headers": {
                    "WWW-Authenticate": {"schema": {"type": "string", "enum": ["token"]}}}},
                "Forbidden": _json(_ref("Errors"), "wrong credentials"),
                "NotFound": _json(_ref("Errors"), "no such thing"),
                "TooLarge": _json(_ref("Errors"),
                                  f"the body is larger than {config.max_body_bytes} bytes"),
                "RedisDown": _json(_ref("Errors"), "Redis is unavailable; retry shortly"),
                "InternalError": _json(_ref("Errors"), "a bug; the details hold a request id"),
            },
            "schemas": {
                "Errors": {"type": "object", "required": ["errors"], "properties": {
                    "errors": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["details"],
                        "properties": {"details": _STRING}}}}},
                "Instance": {"type": "object", "properties": {name: _STRING for name in (
                    "name", "id", "instance_type", "image_id", "ip", "private_ip",
                    "launch_time", "queue", "env", "site", "role")}},
                "Image": {"type": "object", "properties": {
                    "image_id": _STRING, "role": _STRING, "active": {"type": "boolean"},
                    "name": _STRING, "state": _STRING}},
                "BuildRequest": {
                    "type": "object",
                    "required": ["site", "env", "queue", "instance_type", "count"],
                    "properties": {
                        "site": {"type": "string", "enum": ["org", "com"]},
                        "env": {"type": "string", "enum": ["prod", "staging", "test"]},
                        "queue": {"type": "string", "pattern": f"^{WORD}$"},
                        "instance_type": {"type": "string",
                                          "pattern": f"^{INSTANCE_TYPE}$"},
                        "count": {"type": "integer", "minimum": 1,
                                  "maximum": config.max_build_count},
                        "id": {"type": "string", "format": "uuid", "nullable": True,
                               "description": "optional; a repeat returns the existing build"},
                        "role": {"type": "string", "nullable": True,
                                 "pattern": f"^({WORD})?$"},
                        "ami": {"type": "string", "nullable": True,
                                "pattern": f"^({AMI})?$"},
                        "slack_channel": {**_CHANNEL, "nullable": True},
                        "name_template": {
                            "type": "string", "nullable": True, "maxLength": 512,
                            "description": "the Name tag: fields (`{{.Site}}`, `{{ site }}`) and "
                            "the filters lower, upper, trim, replace, default, limit; "
                            "checked now, rendered when the instance exists"},
                        "state": {"type": "string", "nullable": True,
                                  "enum": ["", "pending", "started", "finished", None]},
                        "instance_id": nullable_string,
                        "href": nullable_string,
                    },
                },
                "Build": {
                    "type": "object",
                    "required": ["id", "state", "site", "env", "queue", "instance_type",
                                 "count", "history"],
                    "properties": {
                        **{name: _STRING for name in (
                            "role", "site", "env", "ami", "instance_id", "name_template",
                            "instance_type", "slack_channel", "queue", "id", "jid",
                            "security_group_id", "error", "created_at", "updated_at")},
                        "count": {"type": "integer"},
                        "state": {"type": "string",
                                  "enum": ["pending", "started", "finished", "failed"]},
                        "history": {"type": "array", "items": {
                            "type": "object", "required": ["state", "at"],
                            "properties": {"state": _STRING, "at": _STRING,
                                           "error": _STRING}}},
                    },
                },
            },
        },
    }
