"""``pstfast shadow``: the rollout's shadow run, legacy extraction vs V2 on the same PST.

The legacy side is what production ran before V2: pypff in one process, walking folders and
reading each top-level message. The V2 side is an extract output folder (made now, or an
existing one). Both sides are reduced to the same per-message *shadow hash* and compared
by counts (per folder and in total) and by hash multiset; any difference is reported and
``pstfast shadow`` exits non-zero.

Shadow hash (sha256, hex) of the JSON array::

    [folder_path, subject, sender_name, body_text with all whitespace runs collapsed
     to one space and trimmed, attachment_count]

Only fields both extractors read the same way take part: the point is to catch lost,
duplicated or garbled messages, not to re-test every column.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import storage
from ..errors import CorruptPstError, InputError

_WS = re.compile(r"\s+")


def shadow_hash(folder_path: str, subject: str | None, sender_name: str | None, body_text: str | None,
                attachment_count: int) -> str:
    """The per-message comparison key (see the module docstring)."""
    body = _WS.sub(" ", body_text or "").strip()
    canon = json.dumps([folder_path, subject or "", sender_name or "", body, int(attachment_count)],
                       ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShadowRow:
    folder_path: str
    subject: str
    hash: str


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def legacy_rows(pst_path: str | Path) -> list[ShadowRow]:
    """The legacy extraction: pypff, one process, top-level messages only."""
    from ..extras import require

    pypff = require("pypff", "the shadow run's legacy side")

    pst = pypff.file()
    try:
        pst.open(str(pst_path))
    except OSError as exc:
        raise CorruptPstError(f"{pst_path}: legacy (pypff) cannot open it: {exc}") from exc
    rows: list[ShadowRow] = []
    try:
        stack = [(pst.get_root_folder(), "")]
        while stack:
            folder, path = stack.pop()
            for i in range(folder.number_of_sub_messages):
                msg = folder.get_sub_message(i)
                # non-message items (distribution lists, ...) are plain pypff.item objects
                subject = _text(getattr(msg, "subject", None))
                rows.append(ShadowRow(path, subject, shadow_hash(
                    path, subject, _text(getattr(msg, "sender_name", None)),
                    _text(getattr(msg, "plain_text_body", None)), getattr(msg, "number_of_attachments", 0))))
            for i in reversed(range(folder.number_of_sub_folders)):
                sub = folder.get_sub_folder(i)
                name = _text(sub.name)
                stack.append((sub, f"{path}/{name}" if path else name))
    finally:
        pst.close()
    return rows


def v2_rows(prefix: str) -> list[ShadowRow]:
    """Top-level messages of a V2 output folder (``emails.ndjson.gz``)."""
    url = storage.join(prefix, "emails.ndjson.gz")
    rows: list[ShadowRow] = []
    with storage.open_file(url, "rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            r = json.loads(line)
            if r.get("parent_email_id"):
                continue  # embedded messages: the legacy pipeline never saw them
            # the legacy pipeline read PR_BODY only: compare V2's body where it is that one
            plain = r.get("body_text") if r.get("body_text_source") in ("plain", None) else None
            rows.append(ShadowRow(r["folder_path"], r.get("subject") or "", shadow_hash(
                r["folder_path"], r.get("subject"), r.get("sender_name"), plain,
                int(r.get("attachment_count") or 0))))
    return rows


@dataclass
class ShadowReport:
    """The comparison; ``ok`` when counts and hashes agree."""

    source: str
    v2_prefix: str
    legacy_count: int
    v2_count: int
    folder_diffs: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (legacy, v2)
    only_legacy: list[ShadowRow] = field(default_factory=list)
    only_v2: list[ShadowRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.folder_diffs or self.only_legacy or self.only_v2) and self.legacy_count == self.v2_count

    def render(self, limit: int = 20) -> str:
        lines = [
            f"shadow: {'MATCH' if self.ok else 'MISMATCH'}  {self.source}",
            f"  legacy (pypff, one process): {self.legacy_count} messages",
            f"  v2 ({self.v2_prefix}): {self.v2_count} messages",
        ]
        for path, (a, b) in sorted(self.folder_diffs.items()):
            lines.append(f"  folder {path!r}: legacy {a}, v2 {b}")
        for label, rows in (("only in legacy", self.only_legacy), ("only in v2", self.only_v2)):
            if rows:
                lines.append(f"  {label}: {len(rows)} message(s)")
                lines += [f"    {r.folder_path} | {r.subject!r} | {r.hash[:16]}" for r in rows[:limit]]
        return "\n".join(lines)


def compare(source: str, legacy: list[ShadowRow], v2: list[ShadowRow], v2_prefix: str) -> ShadowReport:
    """Counts per folder and hash multisets, both ways."""
    report = ShadowReport(source, v2_prefix, len(legacy), len(v2))
    per_a, per_b = Counter(r.folder_path for r in legacy), Counter(r.folder_path for r in v2)
    for path in set(per_a) | set(per_b):
        if per_a[path] != per_b[path]:
            report.folder_diffs[path] = (per_a[path], per_b[path])
    hashes_a, hashes_b = Counter(r.hash for r in legacy), Counter(r.hash for r in v2)
    report.only_legacy = _surplus(legacy, hashes_a - hashes_b)
    report.only_v2 = _surplus(v2, hashes_b - hashes_a)
    return report


def _surplus(rows: list[ShadowRow], extra: Counter[str]) -> list[ShadowRow]:
    """The rows whose hash occurs more often on this side (one row per surplus copy)."""
    out = []
    for row in rows:
        if extra[row.hash] > 0:
            extra[row.hash] -= 1
            out.append(row)
    return out


def shadow(source: str, *, v2_prefix: str | None = None, workers: int | None = None) -> ShadowReport:
    """Run the legacy extraction and (unless *v2_prefix* names an existing output) V2 on *source*."""
    source = str(source)
    with tempfile.TemporaryDirectory(prefix="pstfast-shadow-") as tmp:
        local = source
        if storage.is_s3(source):
            local = str(storage.download(source, Path(tmp) / "input.pst"))
        elif not Path(source).is_file():
            raise InputError(f"{source}: no such file")
        if v2_prefix is None:
            from ..extraction.run import extract

            extract(local, tmp, pst_file_id="shadow", project_id="shadow", workers=workers)
            v2_prefix = storage.output_prefix(tmp, "shadow")
            v2 = v2_rows(v2_prefix)
            v2_prefix = "fresh V2 extract"
        else:
            v2 = v2_rows(v2_prefix)
        return compare(source, legacy_rows(local), v2, v2_prefix)
