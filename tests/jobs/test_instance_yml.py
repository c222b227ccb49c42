"""The meta YML becomes the instance YML exactly as the Go original wrote it (spec 6.5)."""

import pytest
import yaml

from pudding.jobs.instance_yml import MetaYML, MetaYMLError

from .conftest import META_YML

# Spec 6.5: site org, env staging, queue docker, count 4; yaml.v2's layout.
ORG_STAGING_DOCKER_4 = """\
env: linux
linux:
  host: $INSTANCE_HOST_NAME
  log_level: info
  queue: builds.docker
  amqp:
    host: hostname
    port: 1234
    username: username
    password: password
    vhost: vhost
  vms:
    provider: docker
    count: 4
  build:
    api_token: api-token
    url: bulid-api-url
  docker:
    private_key_path: /home/deploy/.ssh/docker_rsa
  paranoid: true
  skip_resolv_updates: true
  skip_etc_hosts_fix: true
  librato:
    email: email-address
    token: token
  language_mappings:
    clojure: jvm
    groovy: jvm
    java: jvm
    scala: jvm
  cache_options:
    type: s3
    s3:
      access_key_id: access-key-id
      secret_access_key: secret-access-key
      bucket: bucket
    fetch_timeout: 1200
    push_timeout: 6600
  timeouts:
    hard_limit: 7200
papertrail_site: papertrail-syslog-upstream
"""


def test_the_spec_example_byte_for_byte():
    assert MetaYML(META_YML).instance_yml("org", "staging", "docker", 4) == ORG_STAGING_DOCKER_4


def test_tls_only_when_set():
    prod = yaml.safe_load(MetaYML(META_YML).instance_yml("org", "prod", "docker", 1))
    assert list(prod["linux"]["amqp"]) == ["host", "port", "username", "password", "vhost", "tls"]
    assert prod["linux"]["amqp"]["tls"] == "TLSv1"


@pytest.mark.parametrize(
    ("site", "env", "message"),
    [
        ("nope", "staging", 'missing "site" sub-config'),
        ("org", "test", 'missing "env" sub-config'),
        ("com", "prod", 'missing "env" sub-config'),
    ],
)
def test_missing_site_or_env(site, env, message):
    with pytest.raises(MetaYMLError, match=message):
        MetaYML(META_YML).instance_yml(site, env, "docker", 1)


def test_missing_librato_or_papertrail_site_is_a_missing_site():
    text = META_YML.replace("  com: com-papertrail\n", "")
    with pytest.raises(MetaYMLError, match='missing "site" sub-config'):
        MetaYML(text).instance_yml("com", "staging", "docker", 1)


def test_null_objects_missing_fields_and_quoting_as_yaml_v2():
    meta = MetaYML(
        "amqp: {org: {test: null}}\n"
        "build: {org: {test: {api_token: '', url: '1234', extra: ignored}}}\n"
        "librato: {org: {email: 'a: b', token: 'true'}}\n"
        "cache: {org: {test: {type: s3}}}\n"
        "papertrail: {org: null}\n"
        "unknown: whatever\n"
    )
    text = meta.instance_yml("org", "test", "docker", 2)
    assert "  amqp: null\n" in text
    assert '    api_token: ""\n    url: "1234"\n' in text
    assert "    email: 'a: b'\n    token: \"true\"\n" in text
    assert "    s3: null\n    fetch_timeout: 0\n    push_timeout: 0\n" in text
    assert "extra" not in text
    assert "papertrail_site" not in text
    assert yaml.safe_load(text)["linux"]["build"] == {"api_token": "", "url": "1234"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amqp: [1, 2]", "amqp must be a mapping"),
        ("amqp: {org: {staging: {port: many}}}", "amqp.org.staging.port must be a whole number"),
        ("librato: {org: {email: [x]}}", "librato.org.email must be a string"),
        ("amqp: {org: [", "not YAML"),
    ],
)
def test_a_malformed_meta_yml_is_refused_when_loaded(text, message):
    with pytest.raises(MetaYMLError, match=message):
        MetaYML(text)


def test_no_meta_yml_is_not_configured():
    assert not MetaYML("").configured
    assert MetaYML(META_YML).configured
