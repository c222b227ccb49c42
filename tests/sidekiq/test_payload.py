"""Payloads are bytes: whatever a queue held survives a parse and a dump."""

import pytest

from pudding.sidekiq import payload


@pytest.mark.parametrize(
    "raw",
    [
        b'{"class":"X","args":["a\xffb","\x80"]}',  # bytes that are not UTF-8
        b'{"class":"X","args":["\\ud800 and \\udfff"]}',  # lone surrogates, escaped
        '{"class":"X","args":["caf\u00e9 \u2028 \U0001f600"]}'.encode(),
    ],
)
def test_a_dump_gives_back_the_bytes_that_were_parsed(raw):
    assert payload.dump(payload.load(raw)) == raw


def test_a_byte_that_is_not_utf8_reaches_the_job_as_a_lone_surrogate():
    assert payload.load(b'{"args":["a\xffb"]}')["args"] == ["a\udcffb"]


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"\xff\xfe not json", "Expecting value"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"[" * 100_000, "nests too deeply"),
    ],
)
def test_what_is_no_json_object_is_a_value_error_that_says_why(raw, why):
    with pytest.raises(ValueError, match=why):
        payload.load(raw)


def test_printable_shows_what_is_not_utf8_as_replacement_characters():
    assert payload.printable(b"ok \xff\xfe", 5) == "ok \ufffd\ufffd"
