"""Error reports to Sentry (sentry-sdk), for the API and the jobs, with secrets scrubbed.

`start(dsn, component, secrets)` initialises sentry-sdk once per process. Every event goes
through `Scrubber` before it leaves: the Authorization header, passwords, tokens and the
instance RSA key never reach Sentry, whether they sit in a header, a frame's local
variables, an exception message or a URL. Stack frames keep their local variables
(scrubbed), which is most of what makes a report useful.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

FILTERED = "[Filtered]"

# Keys whose values are secrets wherever they appear (headers, frame variables, extras).
# User data holds the init-script URL with the build's password (base64 in EC2 calls).
_SECRET_KEY = re.compile(
    r"authorization|passw|secret|token|private|rsa|credential|cookie|api_?key|dsn"
    r"|signature|user_?data|^auth$|^pwd$|_auth$|^x-?api",
    re.IGNORECASE,
)
# Secrets inside text: a private key (until its end marker, or the end of a truncated
# string), a URL's password, an Authorization value, `name=value` / `name: value` pairs.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(@)", re.IGNORECASE)
_AUTH_VALUE = re.compile(r"\b(token|basic|bearer)(\s+)[A-Za-z0-9+/=._~-]{6,}", re.IGNORECASE)
_NAMED_SECRET = re.compile(
    r"(\b\w*(?:token|passw\w*|secret|rsa|api_?key)\w*['\"]?\s*[=:]\s*)(['\"]?)[^\s'\",)&;}]+",
    re.IGNORECASE,
)
# Lines of a multi-line secret this long are scrubbed on their own too, so a key still
# goes when its text shows up escaped (a bytes repr) or cut short by Sentry's truncation.
_MIN_SECRET_LINE = 8


class Scrubber:
    """sentry-sdk's `before_send`: returns the event with every secret replaced."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literals: set[str] = set()
        for secret in secrets:
            if secret and secret.strip():
                literals.add(secret)
                literals.update(
                    line.strip() for line in secret.splitlines()
                    if len(line.strip()) >= _MIN_SECRET_LINE
                )
        # Longest first, so a whole secret goes before one of its lines.
        self._literals = sorted(literals, key=len, reverse=True)

    def __call__(self, event: dict[str, Any], hint: dict[str, Any] | None = None) -> Any:
        return self.scrub(event)

    def scrub(self, value: Any, key: str = "") -> Any:
        if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}):
            return FILTERED
        if isinstance(value, dict):
            return {k: self.scrub(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # Header lists are [name, value] pairs.
            if len(value) == 2 and isinstance(value[0], str) and _SECRET_KEY.search(value[0]):
                return [value[0], FILTERED]
            return [self.scrub(item) for item in value]
        if isinstance(value, str):
            return self.scrub_text(value)
        return value

    def scrub_text(self, text: str) -> str:
        # The key first: its BEGIN marker is also one of the literal lines.
        text = _PRIVATE_KEY.sub(FILTERED, text)
        for literal in self._literals:
            text = text.replace(literal, FILTERED)
        text = _URL_PASSWORD.sub(rf"\1{FILTERED}\2", text)
        text = _AUTH_VALUE.sub(rf"\1\2{FILTERED}", text)
        return _NAMED_SECRET.sub(rf"\1\2{FILTERED}", text)


def _release() -> str:
    try:
        return f"pudding@{version('pudding')}"
    except PackageNotFoundError:
        return "pudding@unknown"


def start(
    dsn: str, component: str, secrets: Iterable[str] = ()
) -> Callable[[BaseException], object]:
    """Initialise sentry-sdk for this process; returns its `capture_exception`.

    `secrets` are values this process knows to be secret (the API token, the RSA key…):
    they are scrubbed wherever they appear. No default integrations: the logging one
    would turn our error log lines into second events, and the web framework's would
    report what the API's own error handler already reports.
    """
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=_release(),
        before_send=Scrubber(secrets),
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=True,
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[AtexitIntegration(), DedupeIntegration()],
    )
    # The global scope: requests and jobs run in threads, which have scopes of their own.
    sentry_sdk.get_global_scope().set_tag("component", component)
    return sentry_sdk.capture_exception


def job_error_handler(
    capture: Callable[[BaseException], object],
) -> Callable[[BaseException, dict[str, Any]], None]:
    """An engine error handler (`launcher.error_handlers`) that reports each job failure,
    tagged with the job's class and queue and carrying its jid, args and retry count."""
    import sentry_sdk

    def report(error: BaseException, context: dict[str, Any]) -> None:
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job_class", str(context.get("class", "")))
            scope.set_tag("queue", str(context.get("queue", "")))
            scope.set_context("job", dict(context))
            capture(error)

    return report
