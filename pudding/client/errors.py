"""The `pudding` command's exit codes, and the errors that end with each."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the build waited for failed; a value that does not decode
    USAGE = 2  # click's code: a bad flag, or no URL or token
    NOT_FOUND = 3
    AUTH = 4  # the token (or password) is missing or wrong
    REFUSED = 5  # the API refused the request as invalid (400, 405, 413)
    UNAVAILABLE = 6  # no answer, or a 5xx: trying again later may work
    TIMED_OUT = 7  # `--wait` gave up before the build finished or failed


class CommandError(Exception):
    """Ends the command with a message on stderr and `exit_code`."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class APIError(CommandError):
    """The API answered with an error status, or did not answer."""

    def __init__(self, message: str, exit_code: ExitCode, status: int | None = None) -> None:
        super().__init__(message, exit_code)
        self.status = status
        self.retry_after: float | None = None

    @classmethod
    def from_status(cls, status: int, details: str) -> APIError:
        if status == 404:
            code = ExitCode.NOT_FOUND
        elif status in (401, 403):
            code = ExitCode.AUTH
        elif status >= 500:
            code = ExitCode.UNAVAILABLE
        else:
            code = ExitCode.REFUSED
        return cls(f"HTTP {status}: {details}", code, status)
