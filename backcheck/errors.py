"""Error classes. The library raises them; the CLI alone turns them into messages and exit codes."""

from __future__ import annotations


class BackcheckError(Exception):
    """Base of every error backcheck raises on purpose."""

    kind = "internal"

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def __reduce__(self):  # picklable across the child-process boundary
        return (self.__class__, (self.message, self.where))


class ConfigError(BackcheckError):
    """The YAML file or the command line is wrong: nothing was checked (exit 2)."""

    kind = "config"


class UserCodeError(BackcheckError):
    """The code under test failed or broke the calling contract (exit 3).

    ``kind`` is one of ``exception``, ``timeout``, ``nan``, ``contract``.
    """

    def __init__(self, message: str, where: str | None = None, kind: str = "exception"):
        super().__init__(message, where)
        self.kind = kind

    def __reduce__(self):
        return (self.__class__, (self.message, self.where, self.kind))


class InternalError(BackcheckError):
    """backcheck itself failed: a bug to report (exit 4)."""

    kind = "internal"
