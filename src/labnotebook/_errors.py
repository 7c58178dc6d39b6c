"""Exceptions raised by labnotebook.

Every error the library raises on purpose derives from :class:`LabnotebookError`::

    LabnotebookError
    ├── ValidationError      (also a ValueError) bad input: a name, value, step, URL...
    │   └── FilterError      a filter expression that does not parse or compile
    ├── NotFoundError        (also a KeyError) no run, experiment or note with that id
    ├── StoreError           the store failed or refused a request
    │   └── StoreUnavailableError   the store cannot be reached right now
    └── ConflictError        the request conflicts with the stored state

Messages name the offending value, say what was expected, and how to fix it.
"""

from __future__ import annotations


class LabnotebookError(Exception):
    """Base class of every error raised on purpose by labnotebook."""


class ValidationError(LabnotebookError, ValueError):
    """A value given to labnotebook is not acceptable."""


class FilterError(ValidationError):
    """A filter expression is malformed.

    ``column`` is the 1-based column where the problem was found (or ``None``) and
    ``expression`` the text that was given.
    """

    def __init__(self, message: str, expression: str = "", column: int | None = None):
        self.message = message
        self.expression = expression
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        if self.column is None or not self.expression:
            return self.message
        pointer = " " * (self.column - 1) + "^"
        return (
            f"{self.message} (column {self.column})\n  {self.expression}\n  {pointer}"
        )


class NotFoundError(LabnotebookError, KeyError):
    """No object with the given identifier exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class StoreError(LabnotebookError):
    """The store failed to carry out a request."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached (connection refused, server down, timeout)."""


class ConflictError(LabnotebookError):
    """The request conflicts with what is stored (for example a duplicate name)."""
