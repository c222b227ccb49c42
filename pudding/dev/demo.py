"""What the workers of `pudding dev` are configured with: a demo init-script template, a
meta YML for every site and env, and a stand-in for the instance RSA key."""

from __future__ import annotations

from pathlib import Path

# Jinja2, as new templates are written; `{{.Site}}`-style templates work too.
INIT_SCRIPT_TEMPLATE = """\
#!/bin/sh
# pudding dev's demo init script: build {{ instance_build_id }}, {{ site }}/{{ env }},
# queue {{ queue }}, role {{ role }}, image {{ ami }}, {{ count }} VMs.
set -e
mkdir -p /etc/travis /home/deploy/.ssh
cat > /etc/travis/worker.yml <<'EOF'
{{ instance_yml }}
EOF
cat > /home/deploy/.ssh/docker_rsa <<'EOF'
{{ instance_rsa }}
EOF
chmod 600 /home/deploy/.ssh/docker_rsa
instance_id=$(curl -sf http://169.254.169.254/latest/meta-data/instance-id)
# Tell pudding this instance is ready: the build becomes finished.
curl -sf -X PATCH -d "state=finished&instance-id=$instance_id" '{{ instance_build_url }}'
"""

# Not a key: a real deployment puts its private key in INSTANCE_RSA.
INSTANCE_RSA = """\
-----BEGIN RSA PRIVATE KEY-----
cHVkZGluZyBkZXYgZGVtbyBrZXksIG5vdCBhIHJlYWwgb25l
-----END RSA PRIVATE KEY-----
"""

SITES = ("org", "com")
ENVS = ("prod", "staging", "test")


def meta_yml() -> str:
    """The original's meta YML shape (spec 6.5), with demo values for every site and env."""
    lines = ["amqp:"]
    for site in SITES:
        lines.append(f"  {site}:")
        lines += [f"    {env}: {{host: amqp.{env}.example, port: 5671, username: demo, "
                  f"password: demo, vhost: {site}}}" for env in ENVS]
    lines.append("build:")
    for site in SITES:
        lines.append(f"  {site}:")
        lines += [f"    {env}: {{api_token: demo, url: 'https://build.{env}.example'}}"
                  for env in ENVS]
    lines.append("librato:")
    lines += [f"  {site}: {{email: demo@example.com, token: demo}}" for site in SITES]
    lines.append("cache:")
    for site in SITES:
        lines.append(f"  {site}:")
        lines += [f"    {env}: {{type: s3, s3: {{access_key_id: demo, secret_access_key: demo, "
                  f"bucket: cache-{site}-{env}}}, fetch_timeout: 600, push_timeout: 3600}}"
                  for env in ENVS]
    lines.append("papertrail:")
    lines += [f"  {site}: logs.example:514" for site in SITES]
    return "\n".join(lines) + "\n"


def write_files(directory: Path) -> dict[str, Path]:
    """The three files, keyed by the worker flag that reads each."""
    files = {
        "--init-script-template": (directory / "init-script.sh.j2", INIT_SCRIPT_TEMPLATE),
        "--instance-yml": (directory / "meta.yml", meta_yml()),
        "--instance-rsa": (directory / "instance_rsa", INSTANCE_RSA),
    }
    for path, text in files.values():
        path.write_text(text)
    return {flag: path for flag, (path, _) in files.items()}
