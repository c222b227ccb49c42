"""Name templates at the API: hostile ones are quick 400s, and a template it accepts
renders for every instance id; the original's templates render as before."""

from __future__ import annotations

import random
import time

import pytest

from pudding.templates import (
    DEFAULT_NAME_TEMPLATE,
    SAMPLE_INSTANCE_ID,
    check_name_template,
    name_context,
    render_name,
)

from .conftest import AUTH

BUILD = {"site": "org", "env": "staging", "queue": "docker", "instance_type": "c3.2xlarge",
         "count": 2}

HOSTILE = [
    "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "{{ 'a'|center(999999999) }}",
    "{{ site | center(999999999) }}",
    "{% if InstanceID != 'i-0123456789abcdef0' %}{{ 1 // 0 }}{% endif %}",
    "{{ " + "(" * 100 + "site" + ")" * 100 + " }}",
    "{{ site }}" + "{{ " * 100,
    "{{ 1 // 0 }}",
    "{{ site.__class__.__mro__ }}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_templates_are_quick_400s(client, template):
    began = time.perf_counter()
    result = client.simulate_post("/instance-builds", headers=AUTH, json={
        "instance_builds": {**BUILD, "name_template": template}})
    elapsed = time.perf_counter() - began
    assert result.status_code == 400, result.text
    [error] = result.json["errors"]
    assert error["details"].startswith("name_template is invalid: ")
    assert elapsed < 0.05, elapsed


def test_an_accepted_template_renders_for_every_instance_id(client):
    template = "{{ site }}-{{ InstanceIDWithoutPrefix | replace('0', 'zero') | limit(40) }}"
    result = client.simulate_post("/instance-builds", headers=AUTH, json={
        "instance_builds": {**BUILD, "name_template": template}})
    assert result.status_code == 202, result.text
    check_name_template(template, BUILD)
    rng = random.Random(7)
    for digits in [8] * 50 + [17] * 50:
        instance_id = "i-" + "".join(rng.choice("0123456789abcdef") for _ in range(digits))
        name = render_name(template, name_context(BUILD, instance_id))
        assert 0 < len(name) <= 256 and name.startswith("org-")


def test_the_originals_templates_render_as_before():
    # The Go original's default and its documented fields (spec, section 2); what it
    # rendered for instance i-abcd1234 of this build.
    build = {**BUILD, "id": "0d6e5f07-2d8b-4d5b-9a54-1d2f5c4e2a11", "role": "worker",
             "ami": "ami-0123abcd", "state": "pending", "slack_channel": "#builds",
             "href": "https://pudding.example/instance-builds/0d6e"}
    context = name_context(build, "i-abcd1234")
    expected = {
        DEFAULT_NAME_TEMPLATE: "travis-org-staging-docker-abcd1234",
        "{{.Role}}-{{.Site}}-{{.Env}}-{{.InstanceType}}": "worker-org-staging-c3.2xlarge",
        "{{.AMI}} {{.InstanceID}} {{.Count}} {{.Queue}}": "ami-0123abcd i-abcd1234 2 docker",
        "{{.ID}}": build["id"],
        "{{.State}}/{{.SlackChannel}}/{{.HREF}}": f"pending/#builds/{build['href']}",
        "{{ .Site }}-{{- .Env -}}-x": "org-staging-x",
    }
    for template, name in expected.items():
        assert render_name(template, context) == name
        check_name_template(template, build)
    assert SAMPLE_INSTANCE_ID == "i-" + "0123456789abcdef0"
