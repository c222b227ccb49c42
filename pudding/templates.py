"""Instance name templates: sandboxed Jinja2, also accepting the Go original's `{{.Site}}`.

A template sees the build's fields under two spellings: Jinja-style (`site`, `env`,
`queue`, `instance_id_without_prefix`, …) and the Go original's (`Site`, `Env`, `Queue`,
`InstanceIDWithoutPrefix`, …); a Go reference `{{.Site}}` is read as `{{ Site }}`.
Unknown names are errors. The web checks a template at request time with
`check_name_template`; the worker renders it with `render_name` once the instance exists.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

DEFAULT_NAME_TEMPLATE = "travis-{{.Site}}-{{.Env}}-{{.Queue}}-{{.InstanceIDWithoutPrefix}}"
MAX_TEMPLATE_LENGTH = 512
# EC2 tag values are at most 256 characters.
MAX_NAME_LENGTH = 256
SAMPLE_INSTANCE_ID = "i-0123456789abcdef0"

_GO_FIELD = re.compile(r"\{\{(-?)\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*(-?)\}\}")

# Jinja-style name → the Go original's field name.
_GO_NAMES = {
    "id": "ID",
    "role": "Role",
    "site": "Site",
    "env": "Env",
    "ami": "AMI",
    "instance_id": "InstanceID",
    "name_template": "NameTemplate",
    "instance_type": "InstanceType",
    "slack_channel": "SlackChannel",
    "count": "Count",
    "queue": "Queue",
    "state": "State",
    "href": "HREF",
    "instance_id_without_prefix": "InstanceIDWithoutPrefix",
}


class NameTemplateError(ValueError):
    """The template does not parse, names something unknown, or renders an unusable name."""


class _Environment(ImmutableSandboxedEnvironment):
    # The sandbox already blocks attribute tricks; these stop `{{ "x" * 10**9 }}`.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            raise SecurityError("** is not allowed in a name template")
        sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
        counts = [x for x in (left, right) if isinstance(x, int)]
        if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_NAME_LENGTH:
            raise SecurityError("name template repeats a string beyond the name length")
        return operator.mul(left, right)


_ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def translate_go(source: str) -> str:
    """Rewrite Go field references (`{{.Site}}`, `{{- .Site -}}`) as Jinja expressions."""
    return _GO_FIELD.sub(lambda m: f"{{{{{m[1]} {m[2]} {m[3]}}}}}", source)


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> Template:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise NameTemplateError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    try:
        return _ENV.from_string(translate_go(source))
    except TemplateError as error:
        raise NameTemplateError(str(error)) from None


def name_context(build: Mapping[str, Any], instance_id: str) -> dict[str, Any]:
    """The names a template may use, from a build's fields and the launched instance id."""
    context: dict[str, Any] = {name: build.get(name, "") for name in _GO_NAMES}
    context["instance_id"] = instance_id
    context["instance_id_without_prefix"] = instance_id.removeprefix("i-")
    context.update({go: context[name] for name, go in _GO_NAMES.items()})
    return context


def render_name(source: str, context: Mapping[str, Any]) -> str:
    """Render a name template; raises NameTemplateError with a readable reason."""
    template = _compile(source)
    try:
        name = template.render(context)
    except Exception as error:  # a client's template can fail in any way; all are its fault
        raise NameTemplateError(str(error) or type(error).__name__) from None
    if not name.strip():
        raise NameTemplateError("renders an empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise NameTemplateError(f"renders a name longer than {MAX_NAME_LENGTH} characters")
    return name


def check_name_template(source: str, build: Mapping[str, Any]) -> None:
    """Raise NameTemplateError unless the template renders for this build and a sample id."""
    render_name(source, name_context(build, SAMPLE_INSTANCE_ID))
