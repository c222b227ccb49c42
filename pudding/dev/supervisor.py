"""A small process supervisor: starts children, prefixes their output, stops them in order.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children last-started first (the dashboard and the
workers before the API, Redis last), each with SIGTERM to its whole process group and
SIGKILL if it has not gone after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


class Interrupted(Exception):
    """A stop was asked for (a signal) while waiting."""


class ChildExited(Exception):
    """A child exited while it should be running."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    reader: threading.Thread = field(init=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    def __init__(self, out: IO[str], grace: float = 15.0) -> None:
        self.out = out
        self.grace = grace
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._width = 9

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        quiet: bool = False,
    ) -> Child:
        """`quiet`: drop the child's output (moto logs every request)."""
        process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, process)
        child.reader = threading.Thread(target=self._relay, args=(child,), daemon=True,
                                        name=f"relay-{name}")
        child.reader.start()
        self.children.append(child)
        return child

    def _relay(self, child: Child) -> None:
        if child.process.stdout is None:
            return
        prefix = f"{child.name.ljust(self._width)}| "
        for raw in child.process.stdout:
            self.say(prefix + raw.decode("utf-8", "replace").rstrip("\n"))

    def check(self) -> None:
        """Raises Interrupted when asked to stop, ChildExited when a child has died."""
        if self.stopping.is_set():
            raise Interrupted()
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise ChildExited(f"{child.name} exited with status {code}")

    def wait_until(self, ready: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        """Polls `ready()` until it returns something true; checks the children meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            value = ready()
            if value:
                return value
            if time.monotonic() > deadline:
                raise ChildExited(f"{what} was not ready after {timeout:g} s")
            self.stopping.wait(0.1)

    def watch(self) -> None:
        """Blocks until a stop is asked for (returns) or a child dies (ChildExited)."""
        while True:
            try:
                self.check()
            except Interrupted:
                return
            self.stopping.wait(0.2)

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM ask for a stop; a second one kills everything at once."""

        def handler(signum: int, _frame: object) -> None:
            if self.stopping.is_set():
                self.kill_all()
            self.stopping.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, handler)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self._stop(child)
        for child in self.children:
            child.reader.join(2)

    def _stop(self, child: Child) -> None:
        if child.alive():
            self.say(f"stopping {child.name}")
            _signal_group(child, signal.SIGTERM)
            try:
                child.process.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {self.grace:g} s: killing it")
        # The group may outlive its leader (a grandchild); nothing of it may stay.
        _signal_group(child, signal.SIGKILL)
        child.process.wait()

    def kill_all(self) -> None:
        for child in self.children:
            _signal_group(child, signal.SIGKILL)


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
