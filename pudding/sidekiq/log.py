"""Structured logs: JSON lines when not on a terminal, readable columns when on one.

Lines are written by a background thread: a job thread that logs never waits on
I/O, which would hand the GIL to another thread and stall it for a whole switch
interval under load. That thread wakes when `FLUSH_LINES` lines wait, or `FLUSH_INTERVAL`
after the first of them: waking it for each line cost a busy server a quarter of its CPU
in thread switches, and waiting longer would hold more lines in memory.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import sys
import threading
from typing import Any, TextIO

import structlog

FLUSH_INTERVAL = 0.05
FLUSH_LINES = 100


class LineWriter:
    """A structlog logger whose lines a single thread writes and flushes, in batches:
    a line waits at most `FLUSH_INTERVAL` seconds."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._many = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def msg(self, line: str) -> None:
        self._lines.put(line)
        if self._lines.qsize() >= FLUSH_LINES:
            self._many.set()

    debug = info = warning = warn = error = critical = exception = log = msg

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._lines.put(None)
        self._many.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            batch = [self._lines.get()]
            self._many.wait(FLUSH_INTERVAL)
            self._many.clear()
            while not self._lines.empty():
                batch.append(self._lines.get_nowait())
            lines = [line for line in batch if line is not None]
            if lines:
                self._write(lines)
            if None in batch:
                return

    def _write(self, lines: list[str]) -> None:
        """Lines that cannot be written (a full disk, a closed pipe) are dropped, and said
        so on stderr: the writer lives on, and the lines do not pile up in memory. Text a
        terminal cannot take (a byte of a job that was not UTF-8) is written escaped."""
        text = "\n".join(lines) + "\n"
        try:
            try:
                self._stream.write(text)
            except UnicodeEncodeError:
                self._stream.write(text.encode("utf-8", "backslashreplace").decode())
            self._stream.flush()
        except Exception as error:
            with contextlib.suppress(OSError):
                os.write(2, f"log writer: {len(lines)} lines lost: {error!r}\n".encode())


def configure_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    """structlog, and the standard library's loggers (waitress, botocore) too, to one
    stream through one writer. `verbose` is for pudding's own loggers: botocore's debug
    lines would carry request bodies, instance user data included."""
    stream = stream or sys.stdout
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[structlog.typing.Processor] = (
        # Plain tracebacks: rich ones print local variables, which can hold secrets.
        [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
        if stream.isatty()
        else [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    writer = LineWriter(stream)

    def logger_factory(*_args: Any) -> LineWriter:
        return writer

    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    handler = _WriterHandler(writer)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)


class _WriterHandler(logging.Handler):
    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)
