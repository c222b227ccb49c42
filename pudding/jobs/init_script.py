"""The cloud-init script template: Jinja2, or the Go original's template language.

A template is sandboxed Jinja2 with undefined names as errors, and sees the context under
both spellings: `{{ instance_build_url }}` and the original's `{{.InstanceBuildURL}}`.
A template that uses Go actions (`{{.Env}}`, `{{if .X}}…{{else}}…{{end}}`, `{{/* … */}}`,
with `{{-`/`-}}` trimming) is read as a Go template: its text is kept verbatim (so shell
such as `${#array[@]}` needs no escaping) and any other Go action is refused when the
template is loaded, with the action named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Context name → the Go original's name (spec 6.6, plus Count and InitScriptURL).
GO_NAMES = {
    "env": "Env",
    "site": "Site",
    "queue": "Queue",
    "role": "Role",
    "ami": "AMI",
    "instance_type": "InstanceType",
    "instance_rsa": "InstanceRSA",
    "slack_channel": "SlackChannel",
    "papertrail_site": "PapertrailSite",
    "instance_yml": "InstanceYML",
    "instance_build_id": "InstanceBuildID",
    "instance_build_url": "InstanceBuildURL",
    "init_script_url": "InitScriptURL",
    "count": "Count",
}

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_GO_ACTION = re.compile(r"-?\s*(\.|if\s|else\b|end\s*-?$|/\*)")
_FIELD = r"\.([A-Za-z_][A-Za-z0-9_]*)"
_TRANSLATIONS = (
    (re.compile(_FIELD), lambda m: f"{{{{ {m[1]} }}}}"),
    (re.compile(rf"if\s+{_FIELD}"), lambda m: f"{{% if {m[1]} %}}"),
    (re.compile(rf"else\s+if\s+{_FIELD}"), lambda m: f"{{% elif {m[1]} %}}"),
    (re.compile(r"else"), lambda m: "{% else %}"),
    (re.compile(r"end"), lambda m: "{% endif %}"),
    (re.compile(r"/\*.*\*/", re.DOTALL), lambda m: ""),
)
_GO_SPACE = " \t\r\n"

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class InitScriptTemplateError(ValueError):
    """The template cannot be read, or cannot be rendered with a build's context."""


def context(values: Mapping[str, Any]) -> dict[str, Any]:
    """The names a template sees: each value of `GO_NAMES`' keys, under both spellings."""
    missing = sorted(set(GO_NAMES) - set(values))
    if missing:
        raise ValueError(f"init-script context lacks {missing}")
    names = {name: values[name] for name in GO_NAMES}
    return {**names, **{go: names[name] for name, go in GO_NAMES.items()}}


def is_go_template(source: str) -> bool:
    return any(_GO_ACTION.match(action) for action in _ACTION.findall(source))


def translate_go(source: str) -> str:
    """The Jinja2 equivalent of a Go template (the subset in this module's docstring)."""
    parts: list[str] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[position:match.start()]
        inner = match[1]
        if inner[:1] == "-" and inner[1:2] in _GO_SPACE:
            text = text.rstrip(_GO_SPACE)
            inner = inner[2:]
        trim_after = len(inner) >= 2 and inner[-1] == "-" and inner[-2] in _GO_SPACE
        if trim_after:
            inner = inner[:-2]
        parts.append(_raw(text.lstrip(_GO_SPACE) if trim_next else text))
        parts.append(_translate_action(inner.strip(), match[0]))
        trim_next = trim_after
        position = match.end()
    tail = source[position:]
    parts.append(_raw(tail.lstrip(_GO_SPACE) if trim_next else tail))
    return "".join(parts)


def _translate_action(inner: str, action: str) -> str:
    for pattern, replacement in _TRANSLATIONS:
        if match := pattern.fullmatch(inner):
            return replacement(match)
    raise InitScriptTemplateError(
        f"unsupported Go template action {action}: only {{{{.Field}}}}, if/else/end on a "
        f"field, and comments are understood; rewrite the template in Jinja2"
    )


def _raw(text: str) -> str:
    return f"{{% raw %}}{text}{{% endraw %}}" if text else ""


class InitScriptTemplate:
    def __init__(self, source: str) -> None:
        self.go = is_go_template(source)
        try:
            self.template = _ENV.from_string(translate_go(source) if self.go else source)
        except TemplateError as error:
            raise InitScriptTemplateError(
                f"the init-script template does not parse: {error}"
            ) from None

    def render(self, values: Mapping[str, Any]) -> bytes:
        try:
            return self.template.render(context(values)).encode()
        except TemplateError as error:
            raise InitScriptTemplateError(f"the init-script template fails: {error}") from None
