"""Name templates: what each piece of the language renders, the original's templates as
before, and hostile templates answered by the API with a quick 400."""

from __future__ import annotations

import random
import time

import pytest

from pudding.templates import (
    DEFAULT_NAME_TEMPLATE,
    MAX_NAME_LENGTH,
    check_name_template,
    name_context,
    render_name,
)

from .conftest import AUTH

BUILD = {"site": "org", "env": "staging", "queue": "docker", "instance_type": "c3.2xlarge",
         "count": 2}
CONTEXT = name_context({**BUILD, "queue": "builds.Docker", "role": "", "slack_channel": " #x "},
                       "i-abcd1234")


@pytest.mark.parametrize(("template", "name"), [
    # Every filter.
    ("{{ queue | lower }}", "builds.docker"),
    ("{{ queue | upper }}", "BUILDS.DOCKER"),
    ("[{{ slack_channel | trim }}]", "[#x]"),
    ('{{ queue | replace(".", "-") }}', "builds-Docker"),
    ("{{ queue | replace('s.D', '') }}", "buildocker"),
    ('{{ site | replace("o", "x" ) }}', "xrg"),
    ("{{ role | default('worker') }}-{{ site | default('never') }}", "worker-org"),
    ("{{ queue | limit(6) }}|{{ queue | limit(256) }}", "builds|builds.Docker"),
    ("{{ queue | replace('.', '_') | lower | limit(8) | upper }}", "BUILDS_D"),
    ("{{ site | lower() }}", "org"),
    # Both spellings, and text that only looks like an action.
    ("{{.Site}}/{{ Site }}/{{ site }}/{{.Count}}/{{ count }}", "org/org/org/2/2"),
    ("{{.InstanceID}} {{ instance_id_without_prefix }} {{.InstanceIDWithoutPrefix}}",
     "i-abcd1234 abcd1234 abcd1234"),
    ("{{ site | default('}}') }} {x} }}", "org {x} }}"),
    # Trim markers and comments.
    ("a \n {{- .Site -}} \t b", "aorgb"),
    ("a {{-site-}} b {{ env }}", "aorgb staging"),
    ("x {{/* a comment, {{ even }} this */}} y", "x  y"),
    ("x {{- /* trimmed */ -}} y", "xy"),
])
def test_rendering(template, name):
    assert render_name(template, CONTEXT) == name
    check_name_template(template, {**BUILD, "queue": "builds.Docker", "slack_channel": " #x "})


def test_names_are_clipped_at_256_characters():
    wide = "{{ site | replace('o', '" + "x" * 120 + "') }}"
    assert render_name(wide * 3, CONTEXT) == (("x" * 120 + "rg") * 3)[:MAX_NAME_LENGTH]
    # A value may grow far beyond a name on its way; rendering still takes no time.
    growing = "{{ href" + ' | replace("", "0123456789")' * 12 + " | limit(5) }}"
    began = time.perf_counter()
    assert render_name(growing, name_context({"href": "h" * 60_000}, "i-1")) == "01234"
    assert time.perf_counter() - began < 0.05


def test_the_originals_templates_render_as_before():
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


def post(client, template):
    return client.simulate_post("/instance-builds", headers=AUTH, json={
        "instance_builds": {**BUILD, "name_template": template}})


@pytest.mark.parametrize(("template", "reason"), [
    ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
     "{% %} statements are not allowed in a name template (character 1)"),
    ("{{ 'a'|center(999999999) }}", "unexpected \"'a'\" at character 4"),
    ("{{ site | center(999999999) }}", "unknown filter 'center' at character 11"),
    ("{% if InstanceID != 'i-0123456789abcdef0' %}{{ 1 // 0 }}{% endif %}",
     "{% %} statements are not allowed in a name template (character 1)"),
    ("{{ " + "(" * 100 + "site" + ")" * 100 + " }}", "unexpected '(' at character 4"),
    ("{{ site | limit(" + "(" * 100 + "3" + ")" * 100 + ") }}",
     "unexpected '(' at character 17"),
    ("{{ site }}" + "{{ " * 100, "unexpected '{' at character 14"),
    ("{{ 1 // 0 }}", "unexpected '/' at character 6"),
    ("{{ site.__class__.__mro__ }}", "unexpected '.__class__' at character 8"),
    ("{# a Jinja comment #}{{ site }}",
     "{# #} comments are not allowed in a name template (character 1)"),
    ("{{ site | default('x) }}", "the string at character 19 is not closed"),
    ("{{ site ", "the {{ at character 1 is not closed with }}"),
    ("{{ site | limit(999999999) }}", "999999999 at character 17 is not a number from 1 to 256"),
])
def test_hostile_templates_are_quick_400s(client, template, reason):
    post(client, "{{ nope }}")  # the app's first request, not the template, may take time
    began = time.perf_counter()
    result = post(client, template)
    elapsed = time.perf_counter() - began
    assert result.status_code == 400, result.text
    assert result.json == {"errors": [{"details": f"name_template is invalid: {reason}"}]}
    assert elapsed < 0.05, elapsed


def test_an_accepted_template_renders_for_every_instance_id(client):
    template = '{{ site | replace("o", "x" ) }}-{{ InstanceIDWithoutPrefix | limit(40) }}'
    result = post(client, template)
    assert result.status_code == 202, result.text
    assert result.json["instance_builds"][0]["name_template"] == template
    rng = random.Random(7)
    for digits in [8] * 50 + [17] * 50:
        instance_id = "i-" + "".join(rng.choice("0123456789abcdef") for _ in range(digits))
        name = render_name(template, name_context(BUILD, instance_id))
        assert name == "xrg-" + instance_id.removeprefix("i-")


def test_the_check_sees_the_build_as_it_will_be_stored(client):
    for template in ("{{ id }}", "{{ role }}", "{{ .State }}-{{ site }}"):
        result = client.simulate_post("/instance-builds", headers=AUTH, json={
            "instance_builds": {**BUILD, "name_template": template}})
        assert result.status_code == 202, (template, result.text)
