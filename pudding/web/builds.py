"""Instance builds: create and list them, show one, the instance's callback, its init script."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl

import falcon

from pudding.config import WebConfig
from pudding.jobs.names import INSTANCE_BUILD_JOB
from pudding.sidekiq import ids
from pudding.slack import BackgroundNotifier
from pudding.store.builds import (
    DEFAULT_ROLE,
    FINISHED,
    PENDING,
    Build,
    BuildStore,
    UnknownBuild,
)
from pudding.store.init_scripts import CorruptInitScript, InitScripts
from pudding.templates import DEFAULT_NAME_TEMPLATE, NameTemplateError, check_name_template
from pudding.web.errors import ValidationFailed, render
from pudding.web.fields import (
    AMI,
    INSTANCE_TYPE,
    WORD,
    channel_problem,
    checked_channel,
    checked_instance_id,
    single_values,
)
from pudding.web.middleware import BUILD

STRING_FIELDS = (
    "role", "site", "env", "ami", "instance_id", "name_template", "instance_type",
    "slack_channel", "queue", "href", "state", "id",
)
SITES = ("org", "com")
ENVS = ("prod", "staging", "test")
CLIENT_STATES = ("pending", "started", "finished")
MAX_LIST = 500

_INSTANCE_TYPE = re.compile(INSTANCE_TYPE)
_AMI = re.compile(AMI)
_WORD = re.compile(WORD)
_DECODER = json.JSONDecoder()


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond `limit` bytes."""
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(description=f"the body is larger than {limit} bytes")
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise falcon.HTTPContentTooLarge(description=f"the body is larger than {limit} bytes")
    return body


def parse_json(body: bytes) -> Any:
    """The first JSON value of the body, whatever the Content-Type (old clients send curl's
    form type); trailing data is ignored, as the Go original did."""
    try:
        text = body.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(description="the body is not UTF-8") from None
    if not text:
        raise falcon.HTTPBadRequest(description="the body is empty")
    try:
        value, _end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as error:
        raise falcon.HTTPBadRequest(description=f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise falcon.HTTPBadRequest(description="the body is nested too deeply") from None
    except ValueError as error:  # e.g. an integer beyond Python's digit limit
        raise falcon.HTTPBadRequest(description=f"the body is not usable JSON: {error}") from None
    return value


def build_from_request(
    fields: dict[str, Any], config: WebConfig, channel_param: str | None
) -> Build:
    """Validate the `instance_builds` object; raises ValidationFailed with every problem."""
    wrong_types = [f'"{name}" must be a string' for name in STRING_FIELDS
                   if fields.get(name) is not None and not is_text(fields[name])]
    count = fields.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        wrong_types.append('"count" must be an integer')
    if wrong_types:
        raise ValidationFailed(wrong_types)

    value = {name: fields.get(name) or "" for name in STRING_FIELDS}
    count = count or 0
    errors = []
    # The Go original's checks and messages, in its order.
    if not value["site"]:
        errors.append('empty "site" param')
    if value["site"] not in SITES:
        errors.append("site must be either org or com")
    if not value["env"]:
        errors.append('empty "env" param')
    if value["env"] not in ENVS:
        errors.append("env must be prod, staging, or test")
    if not value["queue"]:
        errors.append('empty "queue" param')
    if not value["instance_type"]:
        errors.append('empty "instance_type" param')
    if value["state"] and value["state"] not in CLIENT_STATES:
        errors.append("state must be pending, started, or finished")
    if count < 1:
        errors.append("count must be more than 0")
    # Ours.
    if count > config.max_build_count:
        errors.append(f"count must be at most {config.max_build_count}")
    if value["id"] and not _is_uuid(value["id"]):
        errors.append("id must be a UUID")
    if value["instance_type"] and not _INSTANCE_TYPE.fullmatch(value["instance_type"]):
        errors.append('instance_type must look like "c3.2xlarge"')
    if value["ami"] and not _AMI.fullmatch(value["ami"]):
        errors.append('ami must look like "ami-0123abcd"')
    for name in ("queue", "role"):
        if value[name] and not _WORD.fullmatch(value[name]):
            errors.append(f'{name} must be 1 to 64 letters, digits, ".", "_" or "-"')
    channel = (channel_param or value["slack_channel"] or config.default_slack_channel).strip()
    if problem := channel_problem(channel):
        errors.append(problem)
    template = value["name_template"] or DEFAULT_NAME_TEMPLATE
    try:
        if template != DEFAULT_NAME_TEMPLATE:
            # The fields as the build will have them; a new id has the same length as
            # any other, and the client's state, instance id and href are not kept.
            check_name_template(template, {
                **value, "count": count, "role": value["role"] or DEFAULT_ROLE,
                "id": value["id"] or str(uuid.UUID(int=0)), "state": PENDING,
                "instance_id": "", "href": "", "slack_channel": channel,
            })
    except NameTemplateError as error:
        errors.append(f"name_template is invalid: {error}")
    if errors:
        raise ValidationFailed(errors)

    return Build(
        id=str(uuid.UUID(value["id"])) if value["id"] else str(ids.new_uuid()),
        site=value["site"],
        env=value["env"],
        queue=value["queue"],
        instance_type=value["instance_type"],
        count=count,
        role=value["role"] or DEFAULT_ROLE,
        ami=value["ami"],
        name_template=template,
        slack_channel=channel,
    )


def is_text(value: Any) -> bool:
    """A string that can be stored: JSON's `\\ud800` escapes make lone surrogates."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class InstanceBuilds:
    def __init__(self, config: WebConfig, builds: BuildStore) -> None:
        self.config = config
        self.builds = builds

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_LIST, default=50)
        render(resp, {"instance_builds": [b.to_json() for b in self.builds.recent(limit)]})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a build and enqueue its job; a repeated client `id` returns that build
        (200) and enqueues nothing."""
        document = parse_json(read_body(req, self.config.max_body_bytes))
        fields = document.get("instance_builds") if isinstance(document, dict) else None
        if not isinstance(fields, dict):
            raise ValidationFailed(['"instance_builds" must be an object'])
        build = build_from_request(fields, self.config, req.get_param("slack-channel"))
        job = {
            "class": INSTANCE_BUILD_JOB,
            "args": [build.id],
            "queue": self.config.queues.instance_builds,
            "retry": True,
        }
        stored, created = self.builds.create(build, job)
        render(resp, {"instance_builds": [stored.to_json()]}, 202 if created else 200)


class InstanceBuild:
    auth = BUILD

    def __init__(
        self,
        config: WebConfig,
        builds: BuildStore,
        scripts: InitScripts,
        slack: BackgroundNotifier,
    ) -> None:
        self.config = config
        self.builds = builds
        self.scripts = scripts
        self.slack = slack

    def on_get(self, req: falcon.Request, resp: falcon.Response, build_id: str) -> None:
        render(resp, {"instance_builds": [self._build(build_id).to_json()]})

    def on_patch(self, req: falcon.Request, resp: falcon.Response, build_id: str) -> None:
        """The instance's callback: `state=finished` marks the build finished, tells Slack,
        and deletes the init script and its password. Other states change nothing."""
        params = {**req.params, **self._body_params(req)}
        build = self._build(build_id)
        if params.get("state") != FINISHED:
            render(resp, {"no": "op"})
            return
        channel = checked_channel(params.get("slack-channel") or "")
        if given := params.get("instance-id"):
            checked_instance_id(given)
        if build.state != FINISHED:
            instance_id = given or build.instance_id
            try:
                build = self.builds.transition(build_id, FINISHED, instance_id=instance_id)
            except UnknownBuild:
                raise falcon.HTTPNotFound(
                    description=f"no such instance build: {build_id}"
                ) from None
            self.slack.notify(
                channel or build.slack_channel or self.config.default_slack_channel,
                f"Finished starting instance `{instance_id or '?wat?'}` "
                f"for instance build *{build_id}*",
            )
        self.scripts.wipe(build_id)
        render(resp, {"sure": "why not"})

    def _build(self, build_id: str) -> Build:
        build = self.builds.get(build_id) if _is_uuid(build_id) else None
        if build is None:
            raise falcon.HTTPNotFound(description=f"no such instance build: {build_id}")
        return build

    def _body_params(self, req: falcon.Request) -> dict[str, str]:
        """Form fields (what `curl -d` sends) or a JSON object; body wins over the query."""
        body = read_body(req, self.config.max_body_bytes)
        if not body.strip():
            return {}
        if (req.content_type or "").startswith("application/json"):
            value = parse_json(body)
            if not isinstance(value, dict) or not all(map(is_text, value.values())):
                raise falcon.HTTPBadRequest(
                    description="the body must be a JSON object of strings"
                )
            return value
        form: dict[str, Any] = {}
        for name, value in parse_qsl(body.decode("utf-8", "replace")):
            form[name] = [form[name], value] if name in form else value
        return single_values(form, "form")


class InitScript:
    """The build's cloud-init script, byte for byte; 404 once expired or wiped."""

    auth = BUILD

    def __init__(self, scripts: InitScripts) -> None:
        self.scripts = scripts

    def on_get(self, req: falcon.Request, resp: falcon.Response, build_id: str) -> None:
        try:
            script = self.scripts.script(build_id)
        except CorruptInitScript as error:
            raise falcon.HTTPInternalServerError(
                description=f"the stored init script is corrupt: {error}"
            ) from None
        if script is None:
            raise falcon.HTTPNotFound(
                description=f"no init script for instance build {build_id} (expired or used)"
            )
        resp.content_type = "text/x-shellscript; charset=utf-8"
        resp.cache_control = ["no-store"]
        resp.data = script
