"""How the admin commands print: tables, JSON, sizes and durations."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, TextIO


def lookup(row: Any, column: str) -> Any:
    """``a.b.c`` reads nested objects, as the API's own ``columns`` parameter does."""
    value = row
    for key in column.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value).replace("\n", "\\n")


def format_table(rows: Sequence[Any], columns: Sequence[str]) -> str:
    """Columns aligned with two spaces between them; numbers right-aligned."""
    cells = [[cell(lookup(row, c)) for c in columns] for row in rows]
    numeric = [all(isinstance(lookup(row, c), int | float)
                   and not isinstance(lookup(row, c), bool) for row in rows) and bool(rows)
               for c in columns]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = []
    for line in [list(columns), *cells]:
        padded = [text.rjust(w) if num else text.ljust(w)
                  for text, w, num in zip(line, widths, numeric, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def select(rows: Sequence[Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: lookup(row, c) for c in columns} for row in rows]


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def human_duration(ms: float | None) -> str:
    if ms is None:
        return "?"
    seconds = int(ms // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{seconds}s")
    return " ".join(parts)


def done(args: argparse.Namespace, out: TextIO, message: str) -> int:
    """A change went through: say so, unless the caller asked for JSON (then say nothing:
    the API returned no body, and the exit status is the answer)."""
    if not args.json:
        out.write(message + "\n")
    return 0
