"""Instance name templates: a small language that is total.

A template is text with actions. An action names a field, in the Go original's spelling
(`{{.Site}}`, `{{ Site }}`) or ours (`{{ site }}`), then any number of filters:
`lower`, `upper`, `trim`, `replace("old", "new")`, `default("text")` (when the value is
empty) and `limit(n)` (the first n characters). `{{-` and `-}}` trim the whitespace
beside them; `{{/* … */}}` is a comment. Nothing else: no loops, no expressions.

Written by hand, not sandboxed Jinja: a sandbox cannot bound a template's time and memory
(a loop over range(99999) inside another held a request thread for minutes), nor can one
sample render prove that a template renders for every instance id. Here parsing is one
linear pass, rendering cannot fail, and the name is clipped to an EC2 tag value's 256
characters; so a template the API accepts renders for every instance.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

DEFAULT_NAME_TEMPLATE = "travis-{{.Site}}-{{.Env}}-{{.Queue}}-{{.InstanceIDWithoutPrefix}}"
MAX_TEMPLATE_LENGTH = 512
# EC2 tag values are at most 256 characters.
MAX_NAME_LENGTH = 256
# The longer of EC2's two id forms, so that the API's check sees the longest name.
SAMPLE_INSTANCE_ID = "i-0123456789abcdef0"

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
_NAMES = {**{name: name for name in _GO_NAMES}, **{go: name for name, go in _GO_NAMES.items()}}

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r"""\s*(?:(\.?[A-Za-z_]\w*)|"([^"]*)"|'([^']*)'|(\d{1,3})|([|(),]))""")

Filter = Callable[[str], str]


def _limit(n: int) -> Filter:
    if not 1 <= n <= MAX_NAME_LENGTH:
        raise NameTemplateError(f"limit takes 1 to {MAX_NAME_LENGTH} characters, not {n}")
    return lambda value: value[:n]


# name → (argument types, the filter made from the arguments)
_FILTERS: dict[str, tuple[tuple[type, ...], Callable[..., Filter]]] = {
    "lower": ((), lambda: str.lower),
    "upper": ((), lambda: str.upper),
    "trim": ((), lambda: str.strip),
    "replace": ((str, str), lambda old, new: lambda value: value.replace(old, new)),
    "default": ((str,), lambda text: lambda value: value or text),
    "limit": ((int,), _limit),
}


class NameTemplateError(ValueError):
    """The template does not parse (or, at the API, renders an unusable name)."""


class _Action(NamedTuple):
    field: str
    filters: tuple[Filter, ...]


def _tokens(source: str, offset: int) -> list[tuple[str, Any, int]]:
    """(kind, value, position) of each token of an action's inside."""
    tokens, at = [], 0
    while at < len(source):
        if source[at:].isspace():
            break
        match = _TOKEN.match(source, at)
        if match is None:
            where = at + offset + len(source[at:]) - len(source[at:].lstrip())
            shown = source[at:].lstrip()[:1]
            raise NameTemplateError(f"unexpected {shown!r} at character {where + 1}")
        name, double, single, number, punct = match.groups()
        # 1-based, in the whole template, where the token starts.
        position = offset + match.end() - len(match[0].lstrip()) + 1
        if name is not None:
            tokens.append(("name", name, position))
        elif number is not None:
            tokens.append(("value", int(number), position))
        elif punct is not None:
            tokens.append((punct, punct, position))
        else:
            tokens.append(("value", double if double is not None else single, position))
        at = match.end()
    return tokens


def _parse_action(inside: str, offset: int) -> _Action | None:
    if inside.strip().startswith("/*") and inside.strip().endswith("*/"):
        return None
    tokens = _tokens(inside, offset)
    if not tokens or tokens[0][0] != "name":
        where = tokens[0][2] if tokens else offset
        raise NameTemplateError(f"an action must start with a field name (character {where})")
    field = tokens[0][1]
    if field.removeprefix(".") not in _NAMES or (
        field.startswith(".") and field[1:] not in _GO_NAMES.values()
    ):
        raise NameTemplateError(f"unknown name {field.removeprefix('.')!r}")
    filters, rest = [], tokens[1:]
    while rest:
        if rest[0][0] != "|" or len(rest) < 2 or rest[1][0] != "name":
            raise NameTemplateError(f"expected | and a filter at character {rest[0][2]}")
        name, rest = rest[1][1], rest[2:]
        if name not in _FILTERS:
            raise NameTemplateError(f"unknown filter {name!r}")
        args: list[Any] = []
        if rest and rest[0][0] == "(":
            rest = rest[1:]
            while rest and rest[0][0] == "value":
                args.append(rest[0][1])
                rest = rest[1:]
                if rest and rest[0][0] == ",":
                    rest = rest[1:]
            if not rest or rest[0][0] != ")":
                raise NameTemplateError(f"{name}(...) takes only strings or numbers, then )")
            rest = rest[1:]
        types, make = _FILTERS[name]
        if tuple(map(type, args)) != types:
            wanted = ", ".join(t.__name__ for t in types) or "no arguments"
            raise NameTemplateError(f"{name} takes {wanted}")
        filters.append(make(*args))
    return _Action(_NAMES[field.removeprefix(".")], tuple(filters))


@functools.lru_cache(maxsize=256)
def _parse(source: str) -> tuple[str | _Action, ...]:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise NameTemplateError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    parts: list[str | _Action] = []
    at, trim_next = 0, False
    for match in _ACTION.finditer(source):
        text = source[at:match.start()]
        if trim_next:
            text = text.lstrip()
        if match[1]:
            text = text.rstrip()
        parts.append(_checked_text(text))
        if (action := _parse_action(match[2], match.start(2))) is not None:
            parts.append(action)
        at, trim_next = match.end(), bool(match[3])
    tail = source[at:]
    parts.append(_checked_text(tail.lstrip() if trim_next else tail))
    return tuple(part for part in parts if part != "")


def _checked_text(text: str) -> str:
    if "{{" in text:
        raise NameTemplateError("an action {{ is not closed with }}")
    if "{%" in text or "{#" in text:
        raise NameTemplateError("{% %} statements and {# #} comments are not allowed here")
    return text


def name_context(build: Mapping[str, Any], instance_id: str) -> dict[str, str]:
    """The values a template may use, from a build's fields and the launched instance id."""
    context = {name: str(build.get(name, "") or "") for name in _GO_NAMES}
    context["instance_id"] = instance_id
    context["instance_id_without_prefix"] = instance_id.removeprefix("i-")
    return context


def _unclipped(source: str, context: Mapping[str, str]) -> str:
    pieces = []
    for part in _parse(source):
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = context.get(part.field, "")
        for apply in part.filters:
            value = apply(value)
        pieces.append(value)
    return "".join(pieces)


def render_name(source: str, context: Mapping[str, str]) -> str:
    """The name, at most MAX_NAME_LENGTH characters; raises NameTemplateError only when
    the template does not parse."""
    return _unclipped(source, context)[:MAX_NAME_LENGTH]


def check_name_template(source: str, build: Mapping[str, Any]) -> None:
    """Raise NameTemplateError unless the template parses and names this build's instance
    (with the longest instance id) with a non-empty name that fits a tag unclipped."""
    name = _unclipped(source, name_context(build, SAMPLE_INSTANCE_ID))
    if not name.strip():
        raise NameTemplateError("renders an empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise NameTemplateError(f"renders a name longer than {MAX_NAME_LENGTH} characters")
