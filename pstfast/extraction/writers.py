"""Serialising rows: NDJSON (orjson), CSV (the loader's dialect), Parquet (pyarrow), gzip.

Workers turn a shard's rows into part files; the merge concatenates the parts in shard
order. Every byte depends only on the rows, never on timing or worker count: gzip members
carry mtime 0 and no file name, Parquet row groups have a fixed size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from isal import igzip
from zlib_ng import zlib_ng

from ..records import ADDRESS_LIST_FIELDS, csv_header, format_timestamp, json_text, pg_array

GZIP_LEVEL = 1  # zlib-ng's fastest level: ~500 MB/s here (zlib's level 1: ~200 MB/s)
PARQUET_ROW_GROUP = 16_384


def gzip_bytes(data: bytes) -> bytes:
    """One deterministic gzip member (mtime 0, no name).

    zlib-ng, not isal: isal compresses faster still, but its bytes for the same input were
    seen to differ between processes (a CI run: same text, members of 741 and 746 bytes),
    and the outputs must be byte-identical whatever the worker count. isal decompresses.
    """
    compressor = zlib_ng.compressobj(GZIP_LEVEL, zlib_ng.DEFLATED, 31)  # 31: a gzip wrapper, mtime 0
    return compressor.compress(data) + compressor.flush()


_NDJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE


def ndjson_lines(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> bytes:
    """NDJSON for *rows*, whose keys are exactly *fields* in order; timestamps as ``...Z`` strings.

    orjson writes a naive (UTC) datetime as ``2021-03-04T05:06:07Z``, with microseconds only
    when present: the same text as :func:`~pstfast.records.format_timestamp`.
    """
    if rows and tuple(rows[0]) != tuple(fields):
        raise ValueError(f"row keys {tuple(rows[0])} are not the record contract {tuple(fields)}")
    return b"".join([orjson.dumps(row, option=_NDJSON_OPTIONS) for row in rows])


def csv_lines(table: Any) -> bytes:
    """CSV lines (no header) in the loader's dialect, from a table made by :func:`arrow_tables`.

    Arrow's "needed" quoting is the dialect: every string quoted (``""`` inside), NULL an
    empty unquoted field, integers bare, booleans ``true``/``false``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return bytes(sink.getvalue().to_pybytes())


def csv_header_member(fields: Sequence[str]) -> bytes:
    """The CSV header as its own gzip member (the first member of a merged file)."""
    return gzip_bytes(csv_header(fields).encode("utf-8"))


# --- Parquet -------------------------------------------------------------------------------


def arrow_schema(columns: Sequence[tuple[str, str]]) -> Any:
    """The Arrow schema for a record contract (PostgreSQL types -> Arrow types)."""
    import pyarrow as pa

    types = {
        "uuid": pa.string(), "text": pa.string(), "text[]": pa.list_(pa.string()),
        "timestamptz": pa.timestamp("us", tz="UTC"), "integer": pa.int32(), "bigint": pa.int64(),
        "smallint": pa.int16(), "boolean": pa.bool_(), "jsonb": pa.string(),
    }
    return pa.schema([pa.field(name, types[pg]) for name, pg in columns])


def _csv_schema(columns: Sequence[tuple[str, str]]) -> Any:
    import pyarrow as pa

    schema = arrow_schema(columns)
    return pa.schema([pa.field(name, pa.string()) if pg in ("text[]", "timestamptz") else schema.field(name)
                      for name, pg in columns])


def arrow_tables(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> tuple[Any, Any]:
    """(Parquet table, CSV table) of *rows*: the same columns, except that the CSV table holds
    lists as PostgreSQL array literals and timestamps as text. Address lists hold addresses
    only; NDJSON keeps the names."""
    import pyarrow as pa

    parquet: list[Any] = []
    csv: list[Any] = []
    for name, pg in columns:
        values = [row[name] for row in rows]
        if pg == "text[]":
            if name in ADDRESS_LIST_FIELDS:
                values = [None if v is None else [a["email"] for a in v] for v in values]
            parquet.append(pa.array(values, pa.list_(pa.string())))
            csv.append(pa.array([None if v is None else pg_array(v) for v in values], pa.string()))
        elif pg == "jsonb":  # JSON text in CSV and Parquet; NDJSON keeps the object
            array = pa.array([None if v is None else json_text(v) for v in values], pa.string())
            parquet.append(array)
            csv.append(array)
        elif pg == "timestamptz":
            parquet.append(pa.array(values, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")))
            csv.append(pa.array([format_timestamp(v) for v in values], pa.string()))
        else:
            array = pa.array(values, arrow_schema([(name, pg)]).field(0).type)
            parquet.append(array)
            csv.append(array)
    return (pa.Table.from_arrays(parquet, schema=arrow_schema(columns)),
            pa.Table.from_arrays(csv, schema=_csv_schema(columns)))


def write_arrow_part(path: Path, table: Any) -> None:
    """A shard's rows as an uncompressed Arrow IPC file (merged into Parquet later)."""
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


class ParquetMerger:
    """Appends Arrow parts, in order, to one zstd Parquet file with fixed-size row groups
    (so the file depends on the rows alone, never on how they were split into parts)."""

    def __init__(self, out: Path, columns: Sequence[tuple[str, str]]) -> None:
        import pyarrow.parquet as pq

        self.schema = arrow_schema(columns)
        self.writer = pq.ParquetWriter(str(out), self.schema, compression="zstd", use_dictionary=True)
        self.pending: list[Any] = []
        self.pending_rows = 0
        self.rows = 0

    def add(self, part: Path) -> None:
        import pyarrow as pa

        with pa.memory_map(str(part)) as source:
            table = pa.ipc.open_file(source).read_all()
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= PARQUET_ROW_GROUP:
            combined = pa.concat_tables(self.pending)
            full = (combined.num_rows // PARQUET_ROW_GROUP) * PARQUET_ROW_GROUP
            self.writer.write_table(combined.slice(0, full), row_group_size=PARQUET_ROW_GROUP)
            self.rows += full
            rest = combined.slice(full)
            self.pending, self.pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        import pyarrow as pa

        if self.pending_rows or not self.rows:
            tail = pa.concat_tables(self.pending) if self.pending else self.schema.empty_table()
            self.writer.write_table(tail, row_group_size=PARQUET_ROW_GROUP)
        self.writer.close()


def read_gzip_text(data: bytes) -> str:
    """Decompress a (multi-member) gzip blob to text (for tests and tools)."""
    return bytes(igzip.decompress(data)).decode("utf-8")  # type: ignore[no-untyped-call]


__all__ = [
    "arrow_schema", "arrow_tables", "csv_header_member", "csv_lines", "gzip_bytes",
    "ParquetMerger", "ndjson_lines", "read_gzip_text", "write_arrow_part",
]
