"""Serialising rows: NDJSON (orjson), CSV (the loader's dialect), Parquet (pyarrow), gzip.

Workers turn a shard's rows into part files; the merge concatenates the parts in shard
order. Every byte depends only on the rows, never on timing or worker count: gzip members
carry mtime 0 and no file name, Parquet row groups have a fixed size.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
from isal import igzip

from .records import ADDRESS_LIST_FIELDS, csv_header, csv_line, format_timestamp

GZIP_LEVEL = 2  # isal levels are 0-3; 2 is a good speed/size balance
PARQUET_ROW_GROUP = 16_384


def gzip_bytes(data: bytes) -> bytes:
    """One deterministic gzip member (mtime 0, no name)."""
    return igzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def ndjson_lines(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> bytes:
    """NDJSON for *rows*, keys in *fields* order, timestamps as ``...Z`` strings."""
    out = bytearray()
    for row in rows:
        obj = {}
        for name in fields:
            value = row.get(name)
            if isinstance(value, dt.datetime):
                value = format_timestamp(value)
            obj[name] = value
        out += orjson.dumps(obj)
        out += b"\n"
    return bytes(out)


def csv_lines(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> bytes:
    """CSV lines (no header) in the loader's dialect."""
    return "".join(csv_line(row, fields) for row in rows).encode("utf-8")


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
        "smallint": pa.int16(), "boolean": pa.bool_(),
    }
    return pa.schema([pa.field(name, types[pg]) for name, pg in columns])


def arrow_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> Any:
    """An Arrow table of *rows*; address lists hold addresses only (as in CSV)."""
    import pyarrow as pa

    schema = arrow_schema(columns)
    data: dict[str, list[Any]] = {}
    for name, _ in columns:
        values = [row.get(name) for row in rows]
        if name in ADDRESS_LIST_FIELDS:
            values = [None if v is None else [a["email"] if isinstance(a, dict) else a for a in v] for v in values]
        elif values and any(isinstance(v, dt.datetime) for v in values):
            values = [v.replace(tzinfo=dt.timezone.utc) if isinstance(v, dt.datetime) and v.tzinfo is None else v
                      for v in values]
        data[name] = values
    return pa.table(data, schema=schema)


def write_arrow_part(path: Path, table: Any) -> None:
    """A shard's rows as an uncompressed Arrow IPC file (merged into Parquet later)."""
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def merge_parquet(parts: Sequence[Path], out: Path, columns: Sequence[tuple[str, str]]) -> None:
    """Concatenate Arrow parts in order into one zstd Parquet file with fixed row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    with pq.ParquetWriter(str(out), schema, compression="zstd", use_dictionary=True) as writer:
        pending: list[Any] = []
        pending_rows = 0
        for part in parts:
            with pa.memory_map(str(part)) as source:
                table = pa.ipc.open_file(source).read_all()
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= PARQUET_ROW_GROUP:
                combined = pa.concat_tables(pending)
                full = (combined.num_rows // PARQUET_ROW_GROUP) * PARQUET_ROW_GROUP
                writer.write_table(combined.slice(0, full), row_group_size=PARQUET_ROW_GROUP)
                rest = combined.slice(full)
                pending, pending_rows = [rest], rest.num_rows
        if pending_rows or not parts:
            tail = pa.concat_tables(pending) if pending else schema.empty_table()
            writer.write_table(tail, row_group_size=PARQUET_ROW_GROUP)


def concat_files(parts: Sequence[Path], out: IO[bytes], head: bytes = b"") -> None:
    """Write *head* then the bytes of every part, in order."""
    if head:
        out.write(head)
    for part in parts:
        with open(part, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)


def read_gzip_text(data: bytes) -> str:
    """Decompress a (multi-member) gzip blob to text (for tests and tools)."""
    return igzip.decompress(data).decode("utf-8")


__all__ = [
    "arrow_schema", "arrow_table", "concat_files", "csv_header_member", "csv_lines", "gzip_bytes",
    "merge_parquet", "ndjson_lines", "read_gzip_text", "write_arrow_part",
]
