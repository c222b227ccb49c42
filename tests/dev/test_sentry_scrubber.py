"""The Sentry scrubber: what an event may carry once it has gone through `before_send`."""

import json

from pudding.sentry import FILTERED, Scrubber

TOKEN = "3f9a2c71d0e84b56a1c2d3e4f5a6b7c8"
RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


def dumped(event):
    return json.dumps(Scrubber([TOKEN, RSA])(event, {}))


def test_headers_and_secret_keys_are_filtered():
    event = {
        "request": {"headers": {"Authorization": f"token {TOKEN}", "Accept": "*/*"}},
        "extra": {"password": "hunter2-hunter2", "count": 3, "PUDDING_AUTH_TOKEN": "x" * 10},
        "breadcrumbs": {"values": [{"data": {"headers": [["Authorization", "Basic eDpwdw=="]]}}]},
    }
    scrubbed = Scrubber([TOKEN, RSA])(event, {})
    assert scrubbed["request"]["headers"] == {"Authorization": FILTERED, "Accept": "*/*"}
    assert scrubbed["extra"] == {
        "password": FILTERED, "count": 3, "PUDDING_AUTH_TOKEN": FILTERED,
    }
    assert scrubbed["breadcrumbs"]["values"][0]["data"]["headers"] == [
        ["Authorization", FILTERED]
    ]


def test_secrets_inside_text_are_filtered():
    frame_vars = {
        "self": f"WebConfig(auth_token='{TOKEN}', host='0.0.0.0')",
        "url": "#include http://x:0b9d3c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e@127.0.0.1/init",
        "header": "Basic eDpzZWNyZXQtcGFzc3dvcmQ=",
        "query": "state=finished&token=abcdef123456&x=1",
        "script": repr(f"#!/bin/sh\ncat > key <<EOF\n{RSA}\nEOF\n".encode()),
        "truncated": f"key: {RSA[:90]}",
        "escaped_line": repr(RSA.splitlines()[1].encode()),
        "redis": "redis://:s3cret-pass@redis.example:6379/2",
    }
    text = dumped({"exception": {"values": [{"stacktrace": {"frames": [{"vars": frame_vars}]}}]}})
    for secret in (TOKEN, "0b9d3c1e-5f6a", "eDpzZWNyZXQtcGFzc3dvcmQ=", "abcdef123456",
                   "MIIEowIBAAKCAQEAu1SU1", "VTLw7onLRnrq0", "PRIVATE KEY-----\\n",
                   "s3cret-pass"):
        assert secret not in text, secret
    assert "127.0.0.1/init" in text and "redis.example:6379/2" in text, "the rest stays"
    assert "state=finished" in text and "&x=1" in text


def test_an_event_without_secrets_is_unchanged():
    event = {"message": "instance build failed", "tags": {"queue": "instance-builds"},
             "contexts": {"job": {"jid": "abc", "args": ["6f0c"], "retry_count": 2}}}
    assert Scrubber([TOKEN])(event, {}) == event


def test_user_data_goes_whole_even_base64_encoded():
    # The user data carries the init-script URL with the build's password.
    params = {"UserData": "I2luY2x1ZGUgaHR0cDovL3g6cGFzc3dvcmRAaG9zdC8K", "MinCount": 1}
    assert Scrubber()({"vars": {"api_params": params}}, {}) == {
        "vars": {"api_params": {"UserData": FILTERED, "MinCount": 1}}
    }
