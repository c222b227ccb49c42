"""Who may call what: token everywhere, a build's one-time password on its own two routes."""

from __future__ import annotations

import base64
import uuid

import pytest

from pudding.store.builds import Build, BuildStore
from pudding.store.init_scripts import InitScripts

from .conftest import AUTH, TOKEN

TOKEN_ROUTES = [
    ("GET", "/instances"), ("GET", "/instances/i-1"), ("DELETE", "/instances/i-1"),
    ("GET", "/images"), ("GET", "/instance-builds"), ("POST", "/instance-builds"),
    ("POST", "/kaboom"), ("DELETE", "/"), ("GET", "/debug/vars"),
]


def basic(user_pass: str, scheme: str = "Basic ") -> dict[str, str]:
    return {"Authorization": scheme + base64.b64encode(user_pass.encode()).decode()}


@pytest.fixture
def build_id(r) -> str:
    build = Build(id=str(uuid.uuid4()), site="org", env="test", queue="docker",
                  instance_type="c3.4xlarge", count=1)
    BuildStore(r).create(build)
    InitScripts(r).store(build.id, b"echo hi\n", "pw-1234")
    return build.id


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES)
def test_missing_credentials_are_401_with_a_token_challenge(client, method, path):
    result = client.simulate_request(method, path)
    assert result.status_code == 401
    assert result.headers["www-authenticate"] == "token"
    assert result.headers["content-type"] == "application/vnd.api+json"
    assert result.json["errors"][0]["details"]


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES)
@pytest.mark.parametrize("header", [
    f"token {TOKEN}x", f"token  {TOKEN}", f"Token {TOKEN}", f"bearer {TOKEN}", TOKEN, "token ",
])
def test_wrong_credentials_are_403(client, method, path, header):
    result = client.simulate_request(method, path, headers={"Authorization": header})
    assert result.status_code == 403
    assert "www-authenticate" not in result.headers


@pytest.mark.parametrize("header", [f"token {TOKEN}", f"token={TOKEN}"])
def test_both_token_spellings_work(client, header):
    assert client.simulate_get("/instances", headers={"Authorization": header}).status_code == 200


def test_public_routes_need_nothing(client):
    greeting = client.simulate_get("/")
    assert (greeting.status_code, greeting.text) == (200, "ohai\n")
    assert greeting.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.simulate_get("/openapi.json").json["openapi"].startswith("3.")


def test_unknown_paths_and_methods_answer_without_credentials(client):
    missing = client.simulate_get("/nope")
    assert missing.status_code == 404
    assert missing.json == {"errors": [{"details": "404 Not Found"}]}
    assert client.simulate_get("/instances/", headers=AUTH).status_code == 404
    wrong = client.simulate_put("/instances")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    assert client.simulate_head("/").status_code == 405


@pytest.mark.parametrize("scheme", ["Basic ", "basic ", "BASIC=", "basic="])
def test_build_password_opens_its_script_and_callback(client, build_id, scheme):
    headers = basic("x:pw-1234", scheme)
    assert client.simulate_get(f"/init-scripts/{build_id}", headers=headers).status_code == 200
    patch = client.simulate_patch(f"/instance-builds/{build_id}", headers=headers)
    assert patch.status_code == 200
    assert client.simulate_get(f"/instance-builds/{build_id}", headers=headers).status_code == 200


def test_build_password_is_trimmed_and_the_user_ignored(client, build_id):
    headers = basic("anyone: pw-1234 ")
    assert client.simulate_get(f"/init-scripts/{build_id}", headers=headers).status_code == 200


@pytest.mark.parametrize("header", [
    basic("x:pw-12345")["Authorization"],
    basic("x:pw-123")["Authorization"],
    basic("pw-1234")["Authorization"],
    "Basic !!notbase64!!",
    "Basic " + base64.b64encode(b"x:\xff").decode(),
    "Basicx " + base64.b64encode(b"x:pw-1234").decode(),
])
def test_bad_build_passwords_are_403(client, build_id, header):
    result = client.simulate_get(f"/init-scripts/{build_id}", headers={"Authorization": header})
    assert result.status_code == 403


def test_a_build_password_opens_nothing_else(client, r, build_id):
    other = str(uuid.uuid4())
    InitScripts(r).store(other, b"echo other\n", "pw-other")
    headers = basic("x:pw-1234")
    assert client.simulate_get(f"/init-scripts/{other}", headers=headers).status_code == 403
    assert client.simulate_get("/instances", headers=headers).status_code == 403
    assert client.simulate_post("/instance-builds", headers=headers).status_code == 403


def test_token_works_on_build_routes(client, build_id):
    assert client.simulate_get(f"/init-scripts/{build_id}", headers=AUTH).status_code == 200


def test_every_response_has_a_request_id(client):
    first = client.simulate_get("/").headers["x-request-id"]
    second = client.simulate_get("/instances").headers["x-request-id"]
    assert first != second and len(first) == 32
    kept = client.simulate_get("/", headers={"X-Request-Id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = client.simulate_get("/", headers={"X-Request-Id": "bad id\n"})
    assert replaced.headers["x-request-id"] != "bad id\n"
