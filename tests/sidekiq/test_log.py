"""The log writer: lines written by one thread, in batches, and all of them at close."""

from __future__ import annotations

import io
import time

from pudding.sidekiq import log
from pudding.sidekiq.log import FLUSH_INTERVAL, FLUSH_LINES, LineWriter


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_that_trickle_in_are_written_in_batches_and_none_is_lost():
    stream = RecordingStream()
    writer = LineWriter(stream)
    began = time.monotonic()
    for n in range(200):
        writer.msg(f"line {n}")
        time.sleep(0.001)
    elapsed = time.monotonic() - began
    writer.close()
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(200)]
    # One wake-up per line was what made a busy server slow.
    assert stream.writes <= elapsed / FLUSH_INTERVAL + 2


def test_a_line_is_written_within_the_flush_interval():
    stream = RecordingStream()
    writer = LineWriter(stream)
    writer.msg("hello")
    deadline = time.monotonic() + 1
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stream.getvalue() == "hello\n"
    writer.close()


def test_a_burst_is_written_without_waiting_out_the_interval(monkeypatch):
    # A long interval: only the number of waiting lines can wake the writer in time,
    # and so bound the memory a burst holds.
    monkeypatch.setattr(log, "FLUSH_INTERVAL", 30.0)
    stream = RecordingStream()
    writer = LineWriter(stream)
    writer.msg("first")
    time.sleep(0.1)  # the writer now waits out the interval
    for n in range(FLUSH_LINES):
        writer.msg(f"line {n}")
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < FLUSH_LINES and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue().count("\n") >= FLUSH_LINES
    writer.msg("last")
    began = time.monotonic()
    writer.close()  # does not wait out the interval either
    assert time.monotonic() - began < 2
    assert stream.getvalue().endswith("last\n")


class FullDisk(io.StringIO):
    """Fails its first write, as a full disk or a closed pipe would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_a_write_that_fails_loses_its_lines_not_the_writer(capfd):
    stream = FullDisk()
    writer = LineWriter(stream)
    writer.msg("lost")
    time.sleep(FLUSH_INTERVAL * 4)
    writer.msg("kept")
    writer.close()
    assert stream.getvalue() == "kept\n"
    assert "1 lines lost" in capfd.readouterr().err


class StrictUTF8(io.StringIO):
    """A stream that, like a UTF-8 terminal, cannot take lone surrogates."""

    def write(self, text: str) -> int:
        text.encode("utf-8")
        return super().write(text)


def test_a_line_with_a_byte_that_was_not_utf8_is_written_escaped():
    stream = StrictUTF8()
    writer = LineWriter(stream)
    writer.msg("class=\udcff")
    writer.msg("next")
    writer.close()
    assert stream.getvalue() == "class=\\udcff\nnext\n"
