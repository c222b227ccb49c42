"""GET /init-scripts/{id}: the stored script, byte for byte, until it expires or is wiped."""

from __future__ import annotations

import base64
import gzip
import uuid

from pudding.store.init_scripts import InitScripts

from .conftest import AUTH


def test_script_is_served_byte_for_byte(client, r):
    build_id = str(uuid.uuid4())
    script = ("#!/bin/bash\n"
              "date +%s; printf '%s %d %%\\n' a 1; echo 100%%; echo '%!s(MISSING)'\n"
              "echo 'ʕノ•ᴥ•ʔノ ︵ ┻━┻ — naïve café'\n").encode()
    script += b"# filler " + (b"x%s%%y" * 40_000)[:200_000] + b"\n"
    assert len(script) > 200_000
    InitScripts(r).store(build_id, script, "pw")
    result = client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH)
    assert result.status_code == 200
    assert result.content == script
    assert result.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert result.headers["cache-control"] == "no-store"


def test_stored_in_the_go_encoding_with_a_ttl(r):
    build_id = str(uuid.uuid4())
    InitScripts(r).store(build_id, b"echo %s\n", "pw", ttl=600)
    stored = r.get(f"pudding:init-script:{build_id}")
    assert gzip.decompress(base64.b64decode(stored)) == b"echo %s\n"
    assert r.get(f"pudding:auth:{build_id}") == "pw"
    assert 590 < r.ttl(f"pudding:init-script:{build_id}") <= 600
    assert 590 < r.ttl(f"pudding:auth:{build_id}") <= 600


def test_a_script_written_by_the_go_worker_is_read(client, r):
    build_id = str(uuid.uuid4())
    r.set(f"pudding:init-script:{build_id}",
          base64.b64encode(gzip.compress(b"echo go\n", 9)).decode())
    assert client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH).content == b"echo go\n"


def test_missing_or_wiped_script_is_404(client, r):
    build_id = str(uuid.uuid4())
    result = client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH)
    assert result.status_code == 404
    assert result.json["errors"][0]["details"] == (
        f"no init script for instance build {build_id} (expired or used)")
    InitScripts(r).store(build_id, b"echo\n", "pw")
    InitScripts(r).wipe(build_id)
    assert client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH).status_code == 404
    assert r.exists(f"pudding:auth:{build_id}") == 0


def test_a_corrupt_script_is_a_500_without_details_of_the_server(client, r):
    build_id = str(uuid.uuid4())
    r.set(f"pudding:init-script:{build_id}", "bm90IGd6aXA=")
    result = client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH)
    assert result.status_code == 500
    assert result.json["errors"][0]["details"].startswith("the stored init script is corrupt")
