"""The one family of user-facing errors.

Library code raises a subclass of :class:`CeError` whose message names the problem and the
fix; the CLI turns it into a single ``Error: ...`` line on stderr and a non-zero exit.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CeError(Exception):
    """A user error: bad input, a missing file, an unknown name."""

    exit_code = 1


class NotFound(CeError):
    """An unknown model, dataset, query, file or id."""


class StoreError(CeError):
    """A store that cannot be read or written as asked."""


class QueryError(CeError):
    """An SQL statement that DuckDB refused, or a bad query parameter."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def error_line(error: BaseException) -> str:
    """The line of an error's text that says what went wrong: its first, or, when the text
    is a Python traceback passed through (DuckDB wraps fsspec's errors so), its last."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: a value from elsewhere, quoted in an error
    line, never makes that line long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
