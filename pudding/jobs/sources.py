"""Where the worker's texts come from: a file named by a flag, else compressed env vars.

A compressed env var holds base64 of gzip data (`gzip < file | base64`); line breaks in
it are ignored, as in the Go original (spec 6.3). Of several names the first that is set
and decodes wins; one that is set but does not decode is reported when nothing else
gives the text, rather than silently read as empty.
"""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

from pudding.config import ConfigError

INSTANCE_RSA_VARS = ("INSTANCE_RSA", "PUDDING_INSTANCE_RSA")
INSTANCE_YML_VARS = ("INSTANCE_YML", "PUDDING_INSTANCE_YML")
INIT_SCRIPT_TEMPLATE_VARS = ("INIT_SCRIPT_TEMPLATE", "PUDDING_INIT_SCRIPT_TEMPLATE")
INSTANCE_RSA_FILE = Path("instance_rsa")


def compress(text: str) -> str:
    """What `bin/set-compressed-env-var` stores: base64 of gzip."""
    return base64.b64encode(gzip.compress(text.encode())).decode("ascii")


def decompress(value: str) -> str:
    """The text of a compressed env var value; ValueError when it is not one."""
    cleaned = value.replace("\r", "").replace("\n", "")
    try:
        return gzip.decompress(base64.b64decode(cleaned, validate=True)).decode()
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"not base64 of gzip-compressed UTF-8 text ({error})") from None


def read_text(
    path: Path | None,
    env_names: Sequence[str],
    environ: Mapping[str, str],
    fallback: Path | None = None,
) -> str | None:
    """The file at `path`, else the first compressed env var that decodes, else the
    `fallback` file if it exists; None when there is none of them."""
    if path is not None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read {path}: {error}") from None
    problems = []
    for name in env_names:
        value = environ.get(name, "")
        if not value:
            continue
        try:
            return decompress(value)
        except ValueError as error:
            problems.append(f"{name} is {error}")
    if fallback is not None and fallback.is_file():
        return fallback.read_text()
    if problems:
        raise ConfigError("; ".join(problems))
    return None
