"""Plain-text tables for the terminal: one header line, columns padded to fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """`columns` are keys of the rows; headers are the keys in capitals. Empty values show
    as `-`, so that every line splits into as many fields as the header."""
    cells = [[_text(row.get(column)) for column in columns] for row in rows]
    headers = [column.upper() for column in columns]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells, strict=False)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value not in (None, "") else "-"
