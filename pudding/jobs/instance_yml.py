"""The meta YML (every site's and env's settings) and the instance YML made from it.

As the Go original: the meta YML has sections `amqp`, `build`, `cache` (site → env →
object), `librato` (site → object) and `papertrail` (site → string); unknown keys are
ignored, missing fields are empty, a null object stays null. For one build the worker picks
its site's and env's objects and writes the instance YML, with yaml.v2's layout: fields in
the original's order, 2-space indents, strings plain unless they would read back as another
type (then double-quoted). `MetaYML` checks the whole document when it is loaded, so a
malformed one stops the worker at start instead of failing every build.
"""

from __future__ import annotations

from typing import Any

import yaml

AMQP = {"host": str, "port": int, "username": str, "password": str, "vhost": str, "tls": str}
BUILD = {"api_token": str, "url": str}
LIBRATO = {"email": str, "token": str}
S3 = {"access_key_id": str, "secret_access_key": str, "bucket": str}
CACHE = {"type": str, "s3": S3, "fetch_timeout": int, "push_timeout": int}
LANGUAGE_MAPPINGS = {"clojure": "jvm", "groovy": "jvm", "java": "jvm", "scala": "jvm"}

MISSING_SITE = 'missing "site" sub-config'
MISSING_ENV = 'missing "env" sub-config'


class MetaYMLError(ValueError):
    """The meta YML is malformed, or lacks the build's site or env."""


class MetaYML:
    def __init__(self, text: str) -> None:
        # Without a meta YML there is no instance YML to make, and builds go ahead without.
        self.configured = bool(text.strip())
        try:
            document = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise MetaYMLError(f"the meta YML is not YAML: {error}") from None
        document = _mapping(document, "the meta YML") or {}
        self.amqp = _by_site(document.get("amqp"), "amqp", AMQP, envs=True)
        self.build = _by_site(document.get("build"), "build", BUILD, envs=True)
        self.librato = _by_site(document.get("librato"), "librato", LIBRATO, envs=False)
        self.cache = _by_site(document.get("cache"), "cache", CACHE, envs=True)
        self.papertrail = {
            str(site): _scalar(value, str, f"papertrail.{site}")
            for site, value in (_mapping(document.get("papertrail"), "papertrail") or {}).items()
        }

    def papertrail_site(self, site: str) -> str:
        if site not in self.papertrail:
            raise MetaYMLError(MISSING_SITE)
        return self.papertrail[site]

    def instance_yml(self, site: str, env: str, queue: str, count: int) -> str:
        """The instance YML of one build; MetaYMLError names what is missing, in the
        original's order of checks."""
        amqp = _pick(self.amqp, site, env)
        build = _pick(self.build, site, env)
        if site not in self.librato:
            raise MetaYMLError(MISSING_SITE)
        librato = self.librato[site]
        cache = _pick(self.cache, site, env)
        papertrail = self.papertrail_site(site)
        if amqp is not None and not amqp["tls"]:
            amqp = {key: value for key, value in amqp.items() if key != "tls"}
        document: dict[str, Any] = {
            "env": "linux",
            "linux": {
                "host": "$INSTANCE_HOST_NAME",
                "log_level": "info",
                "queue": f"builds.{queue}",
                "amqp": amqp,
                "vms": {"provider": "docker", "count": count},
                "build": build,
                "docker": {"private_key_path": "/home/deploy/.ssh/docker_rsa"},
                "paranoid": True,
                "skip_resolv_updates": True,
                "skip_etc_hosts_fix": True,
                "librato": librato,
                "language_mappings": LANGUAGE_MAPPINGS,
                "cache_options": cache,
                "timeouts": {"hard_limit": 7200},
            },
        }
        if papertrail:
            document["papertrail_site"] = papertrail
        return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _pick(section: dict[str, dict[str, Any]], site: str, env: str) -> Any:
    if site not in section:
        raise MetaYMLError(MISSING_SITE)
    if env not in section[site]:
        raise MetaYMLError(MISSING_ENV)
    return section[site][env]


def _by_site(value: Any, path: str, schema: dict[str, Any], envs: bool) -> dict[str, Any]:
    sites = _mapping(value, path) or {}
    if not envs:
        return {str(site): _struct(item, f"{path}.{site}", schema) for site, item in sites.items()}
    return {
        str(site): {
            str(env): _struct(item, f"{path}.{site}.{env}", schema)
            for env, item in (_mapping(by_env, f"{path}.{site}") or {}).items()
        }
        for site, by_env in sites.items()
    }


def _struct(value: Any, path: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """Every field of `schema`, in its order, from `value`; None stays None (Go's nil)."""
    data = _mapping(value, path)
    if data is None:
        return None
    result: dict[str, Any] = {}
    for name, kind in schema.items():
        if isinstance(kind, dict):
            result[name] = _struct(data.get(name), f"{path}.{name}", kind)
        else:
            result[name] = _scalar(data.get(name), kind, f"{path}.{name}")
    return result


def _mapping(value: Any, path: str) -> dict[Any, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise MetaYMLError(f"{path} must be a mapping, not {type(value).__name__}")


def _scalar(value: Any, kind: type, path: str) -> Any:
    if value is None:
        return kind()
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise MetaYMLError(f"{path} must be a whole number, not {value!r}")
    if isinstance(value, dict | list):
        raise MetaYMLError(f"{path} must be a string, not a {type(value).__name__}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Dumper(yaml.SafeDumper):
    """yaml.v2's choice of quotes for strings, and no anchors (yaml.v2 writes none)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_str(self, data: str) -> yaml.ScalarNode:
        style = None
        if "\n" in data:
            style = "|"
        elif self.resolve(yaml.ScalarNode, data, (True, False)) != "tag:yaml.org,2002:str":
            # `"1234"`, `"true"`, `""`: PyYAML would single-quote them, yaml.v2 double-quotes.
            style = '"'
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _Dumper.represent_str)
