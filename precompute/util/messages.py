"""Library errors in the one-line messages the commands print."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first line of the error's text (DuckDB and pyarrow add hints and context lines below it)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
