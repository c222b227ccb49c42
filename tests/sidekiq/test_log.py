"""The log writer: lines written by one thread, in batches, and all of them at close."""

from __future__ import annotations

import io
import time

from pudding.sidekiq.log import FLUSH_INTERVAL, LineWriter


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
