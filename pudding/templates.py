"""Instance name templates: a small language that is total.

A template is text and actions. An action names a field, in the Go original's spelling
(`{{.Site}}`, `{{ Site }}`) or ours (`{{ site }}`), then any number of filters:
`{{ queue | replace(".", "-") | limit(20) }}`. The filters are `lower`, `upper`, `trim`,
`replace("old", "new")`, `default("text")` (the text when the value is empty) and
`limit(n)` (the first n characters); their arguments are strings in single or double
quotes (no escapes) or numbers from 1 to 256. `{{-` and `-}}` trim the whitespace beside
them and `{{/* … */}}` is a comment. Nothing else parses: no statements, loops,
conditions, arithmetic, or parentheses but a filter's arguments.

Written by hand rather than as sandboxed Jinja: the grammar is a dozen lines and must be
total. A sandbox bounds neither a template's time nor its memory (two nested loops over
range(99999) held an API thread for minutes), and rendering once for a sample instance id
cannot show that a template renders for every id. Here parsing is one pass that never
recurses, and rendering cannot fail: every field is converted with str(), every filter is
total on strings, each value is cut to `_VALUE_LIMIT` characters and the name to
MAX_NAME_LENGTH, an EC2 tag value's limit. So a template the API accepts names every
instance.
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
# Room for any field and any name, while `replace("", "…")` over and over, or a huge field,
# cannot make a value without bound.
_VALUE_LIMIT = 4096

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
# Each spelling a template may write → the context's key.
_FIELDS = {
    **{name: name for name in _GO_NAMES},
    **{go: name for name, go in _GO_NAMES.items()},
    **{f".{go}": name for name, go in _GO_NAMES.items()},
}

_SPACE = re.compile(r"\s*")
_COMMENT_CLOSE = re.compile(r"\*/\s*(-?)\}\}")
_TOKEN = re.compile(
    r"""\s*(?:(?P<end>-?\}\})|(?P<name>\.?[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<string>"[^"]*"|'[^']*')|(?P<number>[0-9]+)|(?P<punct>[|(),]))"""
)

Filter = Callable[[str], str]


class _FilterSpec(NamedTuple):
    signature: str  # one letter per argument: s for a string, n for a number
    takes: str
    make: Callable[..., Filter]


_FILTERS = {
    "lower": _FilterSpec("", "no arguments", lambda: str.lower),
    "upper": _FilterSpec("", "no arguments", lambda: str.upper),
    "trim": _FilterSpec("", "no arguments", lambda: str.strip),
    "replace": _FilterSpec(
        "ss", "two strings", lambda old, new: lambda value: value.replace(old, new)
    ),
    "default": _FilterSpec("s", "one string", lambda text: lambda value: value or text),
    "limit": _FilterSpec("n", "one number", lambda n: lambda value: value[:n]),
}


class NameTemplateError(ValueError):
    """The template does not parse (or, at the API, renders an unusable name)."""


class _Token(NamedTuple):
    kind: str  # name, string, number, or the punctuation itself: | ( ) , }}
    text: str
    at: int  # 1-based, in the whole template


class _Action(NamedTuple):
    field: str
    filters: tuple[Filter, ...]


def _unexpected(token: _Token) -> NameTemplateError:
    return NameTemplateError(f"unexpected {token.text!r} at character {token.at}")


def _tokens(source: str, at: int, start: int) -> tuple[list[_Token], int, bool]:
    """The tokens of the action opened at `start`, up to and with its }}; where the action
    ends, and whether it ends with -}}."""
    tokens: list[_Token] = []
    while token := _TOKEN.match(source, at):
        kind = str(token.lastgroup)  # every alternative is a named group
        text = token[kind]
        tokens.append(_Token(text if kind in ("end", "punct") else kind, text,
                             token.start(kind) + 1))
        at = token.end()
        if kind == "end":
            return tokens, at, text.startswith("-")
    at = _SPACE.match(source, at).end()
    if at == len(source):
        raise NameTemplateError(f"the {{{{ at character {start + 1} is not closed with }}}}")
    if source[at] in "'\"":
        raise NameTemplateError(f"the string at character {at + 1} is not closed")
    raise NameTemplateError(f"unexpected {source[at]!r} at character {at + 1}")


def _filter(name: _Token, args: list[_Token]) -> Filter:
    spec = _FILTERS.get(name.text)
    if spec is None:
        raise NameTemplateError(f"unknown filter {name.text!r} at character {name.at}")
    if "".join(arg.kind[0] for arg in args) != spec.signature:
        raise NameTemplateError(f"{name.text} at character {name.at} takes {spec.takes}")
    values: list[str | int] = []
    for arg in args:
        if arg.kind == "string":
            values.append(arg.text[1:-1])
        elif len(arg.text) <= 3 and 1 <= int(arg.text) <= MAX_NAME_LENGTH:
            values.append(int(arg.text))
        else:
            raise NameTemplateError(
                f"{arg.text} at character {arg.at} is not a number from 1 to {MAX_NAME_LENGTH}"
            )
    return spec.make(*values)


def _action(tokens: list[_Token]) -> _Action:
    """field ( "|" filter [ "(" [ arg { "," arg } ] ")" ] )* "}}", read without recursion;
    the last token is the }} so every step can look one ahead."""
    if tokens[0].kind != "name":
        raise _unexpected(tokens[0])
    field = _FIELDS.get(tokens[0].text)
    if field is None:
        raise NameTemplateError(f"unknown name {tokens[0].text!r} at character {tokens[0].at}")
    filters, i = [], 1
    while tokens[i].kind == "|":
        name, args, i = tokens[i + 1], [], i + 2
        if name.kind != "name":
            raise _unexpected(name)
        if tokens[i].kind == "(":
            i += 1
            while tokens[i].kind != ")":
                if args and tokens[i].kind == ",":
                    i += 1
                elif args:
                    raise _unexpected(tokens[i])
                if tokens[i].kind not in ("string", "number"):
                    raise _unexpected(tokens[i])
                args.append(tokens[i])
                i += 1
            i += 1
        filters.append(_filter(name, args))
    if tokens[i].kind not in ("}}", "-}}"):
        raise _unexpected(tokens[i])
    return _Action(field, tuple(filters))


def _text(source: str, start: int, end: int) -> str:
    for opening, what in (("{%", "{% %} statements"), ("{#", "{# #} comments")):
        if (found := source.find(opening, start, end)) != -1:
            raise NameTemplateError(
                f"{what} are not allowed in a name template (character {found + 1})"
            )
    return source[start:end]


@functools.lru_cache(maxsize=256)
def _parse(source: str) -> tuple[str | _Action, ...]:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise NameTemplateError(f"longer than {MAX_TEMPLATE_LENGTH} characters")
    parts: list[str | _Action] = []
    at, trim = 0, False  # trim: the last action ended with -}}
    while (start := source.find("{{", at)) != -1:
        text = _text(source, at, start)
        text = text.lstrip() if trim else text
        inside = start + 2
        if source.startswith("-", inside):
            text, inside = text.rstrip(), inside + 1
        parts.append(text)
        inside = _SPACE.match(source, inside).end()
        if source.startswith("/*", inside):
            close = _COMMENT_CLOSE.search(source, inside + 2)
            if close is None:
                raise NameTemplateError(
                    f"the comment at character {inside + 1} is not closed with */}}}}"
                )
            at, trim = close.end(), bool(close[1])
        else:
            tokens, at, trim = _tokens(source, inside, start)
            parts.append(_action(tokens))
    tail = _text(source, at, len(source))
    parts.append(tail.lstrip() if trim else tail)
    return tuple(part for part in parts if part != "")


def name_context(build: Mapping[str, Any], instance_id: str) -> dict[str, Any]:
    """The values a template may use, from a build's fields and the launched instance id."""
    context = {name: build.get(name, "") for name in _GO_NAMES}
    context["instance_id"] = instance_id
    context["instance_id_without_prefix"] = instance_id.removeprefix("i-")
    return context


def _unclipped(source: str, context: Mapping[str, Any]) -> str:
    pieces = []
    for part in _parse(source):
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = str(context.get(part.field, ""))[:_VALUE_LIMIT]
        for apply in part.filters:
            value = apply(value)[:_VALUE_LIMIT]
        pieces.append(value)
    return "".join(pieces)


def render_name(source: str, context: Mapping[str, Any]) -> str:
    """The instance's name, clipped to MAX_NAME_LENGTH characters (an EC2 tag value's
    limit). Raises NameTemplateError only when the template does not parse: rendering a
    parsed template cannot fail."""
    return _unclipped(source, context)[:MAX_NAME_LENGTH]


def check_name_template(source: str, build: Mapping[str, Any]) -> None:
    """What the API runs: raise NameTemplateError unless the template parses, and names
    this build's instance (with the longest instance id) with a non-empty name that fits
    a tag without clipping. Since rendering cannot fail, an accepted template renders for
    every instance id."""
    name = _unclipped(source, name_context(build, SAMPLE_INSTANCE_ID))
    if not name.strip():
        raise NameTemplateError("renders an empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise NameTemplateError(f"renders a name longer than {MAX_NAME_LENGTH} characters")
