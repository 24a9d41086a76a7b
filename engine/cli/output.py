"""Writing query results: a readable table, CSV, JSON or Parquet, to stdout or a file."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ce.store import atomic
from ce.store.errors import CeError

FORMATS = ("table", "csv", "json", "parquet")
WIDTH = 120  # terminal tables fit this many columns (text cells are shortened to fit)
MIN_TEXT = 8  # a text column is never shortened below this


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.1e}" if 0 < abs(value) < 0.0005 else f"{value:.3f}"  # a p of 1e-12 is not 0.000
    if isinstance(value, list | tuple):
        shown = ", ".join(_cell(v) for v in value[:5])
        return f"[{shown}{', ...' if len(value) > 5 else ''}]"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def render_table(table: pa.Table, max_rows: int = 50, width: int | None = WIDTH) -> str:
    """Aligned columns (numbers right, text left); floats to three decimals (tiny ones in
    scientific notation); text cells shortened with '~' until the table fits ``width``
    characters (None: as wide as it takes)."""
    names = table.column_names
    rows = table.slice(0, max_rows).to_pylist()
    cells = [[_cell(r[n]) for n in names] for r in rows]
    numeric = [
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        for t in table.schema.types
    ]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    if width is not None:
        widths = _fit(widths, numeric, width)
        cells = [[_shorten(v, w) for v, w in zip(c, widths, strict=True)] for c in cells]
        names = [_shorten(n, w) for n, w in zip(names, widths, strict=True)]

    def line(values):
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(c) for c in cells]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows (use --format csv or -o FILE)")
    if table.num_rows == 0:
        out.append("(no rows)")
    return "\n".join(out) + "\n"


def _fit(widths: list[int], numeric: list[bool], limit: int) -> list[int]:
    """Column widths whose table (two spaces apart) fits ``limit``: the widest text column
    loses a character at a time, none below MIN_TEXT; numbers keep their width."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        text = [i for i, num in enumerate(numeric) if not num and widths[i] > MIN_TEXT]
        if not text:
            break
        widest = max(text, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def write_result(
    reader: pa.RecordBatchReader, fmt: str, out: str | None, max_rows: int = 50, width: int | None = WIDTH
) -> None:
    """Write a result in ``fmt`` to ``out`` (a path) or stdout; files are written atomically;
    a table on stdout fits ``width`` columns."""
    if fmt not in FORMATS:
        raise CeError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet" and out is None:
        raise CeError("--format parquet needs an output file: add -o FILE.parquet")
    if out is None:
        _write(reader, fmt, sys.stdout, max_rows, width)
        return
    path = Path(out)
    if not path.parent.exists():
        raise CeError(f"cannot write {out}: folder {path.parent} does not exist")
    with atomic.atomic_path(path) as tmp:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as w:
                for batch in reader:
                    w.write_batch(batch)
        else:
            with open(tmp, "w", newline="") as f:
                _write(reader, fmt, f, max_rows=None, width=None)


def _write(reader: pa.RecordBatchReader, fmt: str, stream: IO[str], max_rows, width: int | None) -> None:
    if fmt == "table":
        from .tables import with_intervals_merged

        table = with_intervals_merged(reader.read_all())
        stream.write(render_table(table, max_rows or table.num_rows, width))
    elif fmt == "csv":
        first = True
        for batch in reader:
            buf = io.BytesIO()
            pacsv.write_csv(
                pa.Table.from_batches([batch], reader.schema), buf, pacsv.WriteOptions(include_header=first)
            )
            stream.write(buf.getvalue().decode())
            first = False
        if first:  # no batches: still write the header
            buf = io.BytesIO()
            pacsv.write_csv(reader.schema.empty_table(), buf)
            stream.write(buf.getvalue().decode())
    elif fmt == "json":  # JSON lines: one object per row, streamable
        for batch in reader:
            for row in batch.to_pylist():
                stream.write(json.dumps(row, default=str) + "\n")
    else:
        raise CeError("--format parquet needs an output file: add -o FILE.parquet")


def write_results(
    results: list, fmt: str, out: str | None, max_rows: int = 1000, width: int | None = WIDTH
) -> None:
    """Write each ``(title or None, Result or Arrow table)`` in turn (titles only in table
    format), then every result's notes on stderr."""
    for n, (title, result) in enumerate(results):
        if title:
            print(("\n" if n else "") + title, file=sys.stdout)
        reader = result.to_reader() if isinstance(result, pa.Table) else result.reader()
        write_result(reader, fmt, out, max_rows=max_rows, width=width)
    for _, result in results:
        for note in getattr(result, "notes", ()):
            print(note, file=sys.stderr)
