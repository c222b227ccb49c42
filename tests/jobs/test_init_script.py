"""Init-script templates (Go-style and Jinja2) and compressed env vars."""

import base64
import gzip
from pathlib import Path

import pytest

from pudding.config import ConfigError
from pudding.jobs.init_script import GO_NAMES, InitScriptTemplate, InitScriptTemplateError
from pudding.jobs.instance_yml import MetaYML
from pudding.jobs.sources import compress, decompress, read_text

from .conftest import GO_TEMPLATE, INSTANCE_RSA, META_YML
from .test_instance_yml import ORG_STAGING_DOCKER_4

BUILD_ID = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
BUILD_URL = f"https://x:secret@pudding.example.com/instance-builds/{BUILD_ID}"


def values(**changes):
    base = {
        "env": "staging", "site": "org", "queue": "docker", "role": "worker",
        "ami": "ami-00aabbcc", "instance_type": "c3.2xlarge", "instance_rsa": INSTANCE_RSA,
        "slack_channel": "#builds", "papertrail_site": "papertrail-syslog-upstream",
        "instance_yml": MetaYML(META_YML).instance_yml("org", "staging", "docker", 4),
        "instance_build_id": BUILD_ID, "instance_build_url": BUILD_URL,
        "init_script_url": f"https://x:secret@pudding.example.com/init-scripts/{BUILD_ID}",
        "count": 4,
    }
    return {**base, **changes}


def test_an_original_template_and_meta_yml_render_the_script_the_spec_describes():
    script = InitScriptTemplate(GO_TEMPLATE).render(values()).decode()
    assert script == (
        "#!/bin/bash\n"
        "set -o errexit\n"
        f"# build {BUILD_ID}: org/staging queue=docker role=worker\n"
        "# ami=ami-00aabbcc type=c3.2xlarge count=4 channel=#builds\n"
        'ARGS=(a b c); echo "${#ARGS[@]} {%not jinja%} $(date +%s)"\n'
        "export INSTANCE_ID=$(curl -s 'http://169.254.169.254/latest/meta-data/instance-id')\n"
        f"cat > docker_rsa <<EOF\n{INSTANCE_RSA}\nEOF\n"
        f"cat > travis-worker.yml <<EOF\n{ORG_STAGING_DOCKER_4}\nEOF\n"
        "echo '*.* @@papertrail-syslog-upstream' > papertrail.conf\n"
        'curl -s -f -d "state=finished&instance-id=$INSTANCE_ID" -X PATCH '
        f'"{BUILD_URL}"\n'
    )


def test_go_trim_markers_conditionals_and_comments():
    template = InitScriptTemplate(
        "a  {{- .Site -}}  b\n{{/* a comment */}}"
        "{{if .Count}}count={{.Count}}{{else}}none{{end}}\n"
        "{{if .PapertrailSite}}pt{{else if .Queue}}q={{.Queue}}{{end}}\n"
    )
    assert template.render(values()).decode() == "aorgb\ncount=4\npt\n"
    assert template.render(values(papertrail_site="")).decode() == "aorgb\ncount=4\nq=docker\n"


def test_jinja_templates_see_both_spellings_and_keep_the_last_newline():
    template = InitScriptTemplate(
        "{{ site }}={{ Site }} {{ ami }} {{ init_script_url }}"
        "{% if count > 1 %} many{% endif %}\n"
    )
    assert not template.go
    assert template.render(values()).decode() == (
        f"org=org ami-00aabbcc https://x:secret@pudding.example.com/init-scripts/{BUILD_ID}"
        " many\n"
    )


def test_every_context_name_is_there_under_both_spellings():
    source = " ".join(f"{{{{ {name} }}}}{{{{ {go} }}}}" for name, go in GO_NAMES.items())
    rendered = InitScriptTemplate(source).render(values()).decode()
    assert "InitScriptURL" not in rendered and BUILD_URL in rendered


@pytest.mark.parametrize(
    "source",
    ['{{.Env | printf "%q"}}', "{{.Env}} {{range .Things}}x{{end}}", "{{.Env}}{{template \"x\"}}"],
)
def test_unsupported_go_actions_are_refused_when_loaded(source):
    with pytest.raises(InitScriptTemplateError, match="unsupported Go template action"):
        InitScriptTemplate(source)


@pytest.mark.parametrize("source", ["{{.Nope}}", "{{ nope }}", "{{if .Nope}}x{{end}}"])
def test_unknown_names_fail_the_render(source):
    template = InitScriptTemplate(source)
    with pytest.raises(InitScriptTemplateError, match="is undefined"):
        template.render(values())


def test_a_broken_jinja_template_is_refused_when_loaded():
    with pytest.raises(InitScriptTemplateError, match="does not parse"):
        InitScriptTemplate("{% if %}")


def test_the_sandbox_holds():
    template = InitScriptTemplate("{{ env.__class__.__mro__ }}")
    with pytest.raises(InitScriptTemplateError):
        template.render(values())


def test_an_empty_template_renders_an_empty_script():
    assert InitScriptTemplate("").render(values()) == b""


def test_compressed_env_vars_accept_line_wrapped_base64():
    text = "".join(f"line {n * 7919 % 1000}\n" for n in range(200))
    value = base64.encodebytes(gzip.compress(text.encode())).decode().replace("\n", "\r\n")
    assert "\r\n" in value.strip()
    assert decompress(value) == text
    assert decompress(compress("x")) == "x"


def test_the_first_usable_source_wins(tmp_path: Path):
    env = {"A": "not base64!", "B": compress("from B")}
    assert read_text(None, ("A", "B"), env) == "from B"
    assert read_text(None, ("B", "A"), {**env, "B": compress("first")}) == "first"
    file = tmp_path / "text"
    file.write_text("from the file")
    assert read_text(file, ("B",), env) == "from the file"
    fallback = tmp_path / "fallback"
    fallback.write_text("fallback")
    assert read_text(None, ("C",), env, fallback) == "fallback"
    assert read_text(None, ("C",), env) is None
    assert read_text(None, ("C",), {"C": ""}) is None


def test_a_set_but_undecodable_var_is_reported_when_nothing_else_is_there():
    with pytest.raises(ConfigError, match="INSTANCE_YML is not base64 of gzip"):
        read_text(None, ("INSTANCE_YML",), {"INSTANCE_YML": base64.b64encode(b"plain").decode()})
