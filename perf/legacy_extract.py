"""The legacy baseline: one process, pypff, the same fields, json.dumps per row, gzip level 6.

This is what pstfast replaces; perf/bench_extract.py runs it side by side with pstfast.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import sys
from pathlib import Path

from pstfast.extraction.items import ItemReader, open_pypff
from pstfast.records import format_timestamp


def _folders(folder, path=()):
    """(pypff folder, folder path) depth first, the way a pypff script walks a PST."""
    yield folder, "/".join(path)
    for i in range(folder.number_of_sub_folders):
        child = folder.get_sub_folder(i)
        yield from _folders(child, path + (child.name or "",))


def _timestamp(value: object) -> str | None:
    """json.dumps's fallback: the datetimes of the newer fields (created_at, item_properties...)."""
    if isinstance(value, datetime.datetime):
        return format_timestamp(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def legacy_extract(pst_path: str | Path, out_dir: str | Path) -> int:
    """Extract every item the slow way; returns the number of email rows written."""
    out = Path(out_dir)
    (out / "attachments").mkdir(parents=True, exist_ok=True)
    pst = open_pypff(pst_path)
    reader = ItemReader(pst_path)  # the field logic only: every item below is read by pypff
    count = 0
    with gzip.open(out / "emails.ndjson.gz", "wt", compresslevel=6, encoding="utf-8") as sink:
        for folder, folder_path in _folders(pst.get_root_folder()):
            for index in range(folder.number_of_sub_messages):
                stack = [(reader.read(reader.pypff_item(folder.get_sub_message(index))), folder_path)]
                while stack:
                    msg, path = stack.pop()
                    row = {k: v for k, v in vars(msg).items() if k not in ("attachments", "problems")}
                    row["folder_path"] = path
                    row["sent_at"] = format_timestamp(msg.sent_at)
                    row["received_at"] = format_timestamp(msg.received_at)
                    row["attachments"] = []
                    for att in msg.attachments:
                        if att.data is not None:
                            sha = hashlib.sha256(att.data).hexdigest()
                            (out / "attachments" / sha).write_bytes(att.data)
                            row["attachments"].append(sha)
                        if att.message is not None:
                            stack.append((att.message, path))
                    sink.write(json.dumps(row, default=_timestamp) + "\n")
                    count += 1
    return count


if __name__ == "__main__":
    print(legacy_extract(sys.argv[1], sys.argv[2]))
