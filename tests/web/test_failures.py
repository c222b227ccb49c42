"""When things break: a crashing route, Redis going away and coming back."""

from __future__ import annotations

import signal
import time

import falcon.testing

from pudding.config import RedisSettings, WebConfig
from pudding.web import create_app
from pudding.web.root import KABOOM

from .conftest import AUTH, TOKEN

BUILD = ('{"instance_builds": {"site": "org", "env": "test", "queue": "q", '
         '"instance_type": "c3.large", "count": 1}}')


def test_kaboom_is_a_json_500_without_a_traceback_and_serving_goes_on(client):
    result = client.simulate_post("/kaboom", headers={**AUTH, "Accept-Encoding": "gzip"})
    assert result.status_code == 500
    assert result.headers["content-type"] == "application/vnd.api+json"
    [error] = result.json["errors"]
    assert error["details"] == f"internal server error (request {result.headers['x-request-id']})"
    assert "Traceback" not in result.text and KABOOM not in result.text
    assert client.simulate_get("/instances", headers=AUTH).status_code == 200


def test_kaboom_is_reported_to_sentry_when_configured(config, monkeypatch):
    captured: list[BaseException] = []
    import sentry_sdk

    monkeypatch.setattr(sentry_sdk, "init", lambda **options: captured.append(options))
    monkeypatch.setattr(sentry_sdk, "capture_exception", captured.append)
    from dataclasses import replace

    app = create_app(replace(config, sentry_dsn="https://key@sentry.example/1"))
    falcon.testing.TestClient(app).simulate_post("/kaboom", headers=AUTH)
    options, error = captured
    assert options["send_default_pii"] is False
    assert isinstance(error, RuntimeError) and str(error) == KABOOM


def test_redis_down_is_503_fast_and_the_app_recovers(private_redis):
    config = WebConfig(auth_token=TOKEN, redis=RedisSettings(url=private_redis.url()))
    client = falcon.testing.TestClient(create_app(config))
    assert client.simulate_get("/instances", headers=AUTH).status_code == 200

    private_redis.stop()
    for method, path in [("GET", "/instances"), ("POST", "/instance-builds"),
                         ("GET", "/init-scripts/00000000-0000-4000-8000-000000000000")]:
        started = time.monotonic()
        result = client.simulate_request(method, path, headers=AUTH, body=BUILD)
        assert time.monotonic() - started < 2
        assert result.status_code == 503
        assert result.json == {"errors": [{"details": "redis is unavailable, try again shortly"}]}
        assert result.headers["retry-after"] == "1"
    # Basic auth needs Redis to check the password: that is a 503 too, not a 403.
    basic = client.simulate_get("/init-scripts/00000000-0000-4000-8000-000000000000",
                                headers={"Authorization": "Basic eDpwdw=="})
    assert basic.status_code == 503
    assert client.simulate_get("/").status_code == 200

    private_redis.start()  # empty: no data, no loaded scripts
    assert client.simulate_get("/instances", headers=AUTH).status_code == 200
    created = client.simulate_post("/instance-builds", headers=AUTH, body=BUILD)
    assert created.status_code == 202


def test_a_hung_redis_is_503_within_2_seconds(private_redis):
    config = WebConfig(auth_token=TOKEN, redis=RedisSettings(url=private_redis.url()))
    client = falcon.testing.TestClient(create_app(config))
    assert client.simulate_get("/images", headers=AUTH).status_code == 200
    private_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert client.simulate_get("/images", headers=AUTH).status_code == 503
        assert time.monotonic() - started < 2
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    assert client.simulate_get("/images", headers=AUTH).status_code == 200
