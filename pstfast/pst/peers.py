"""Read a PST back: folder tree and counts, as libpff sees it and as readpst sees it.

Two independent readers are the check on everything pstfast writes: ``pstfast inspect``
prints what libpff reports and, with ``--readpst``, compares it with readpst's output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CorruptPstError, InputError, NotAPstError, UsageError

TOP = "Top of Personal Folders"


@dataclass
class FolderCounts:
    """One folder: messages directly in it and their top-level attachments."""

    path: str
    messages: int = 0
    attachments: int = 0


@dataclass
class Summary:
    """A reader's view of a PST: every folder below the nameless root, in walk order."""

    reader: str
    folders: list[FolderCounts] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.folders)

    @property
    def attachments(self) -> int:
        return sum(f.attachments for f in self.folders)

    def by_path(self) -> dict[str, FolderCounts]:
        return {f.path: f for f in self.folders}

    def by_subtree_path(self) -> dict[str, FolderCounts]:
        """Folders keyed by their path below the top folder (readers name the top differently)."""
        return {f.path.partition("/")[2]: f for f in self.folders}


def check_pst_file(path: str | os.PathLike[str]) -> Path:
    """Raise a clear error unless *path* is an existing file that starts like a PST."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p}: is a folder, expected a .pst file")
    size = p.stat().st_size
    if size == 0:
        raise NotAPstError(f"{p}: file is empty (0 bytes), not a PST")
    with open(p, "rb") as f:
        head = f.read(12)
    if head[:4] != b"!BDN":
        raise NotAPstError(f"{p}: not a PST file (no '!BDN' signature at offset 0)")
    if head[8:10] not in (b"SM", b"SO", b"AB"):
        raise NotAPstError(f"{p}: unknown PST client signature {head[8:10]!r}")
    return p


def libpff_summary(path: str | os.PathLike[str]) -> Summary:
    """Folders and counts as libpff (pypff) reports them."""
    from ..extras import require

    pypff = require("pypff", "pstfast inspect")

    p = check_pst_file(path)
    handle = pypff.file()
    try:
        handle.open(str(p))
    except OSError as exc:
        raise CorruptPstError(f"{p}: libpff cannot open it: {str(exc).splitlines()[0]}") from exc
    summary = Summary("libpff")
    try:
        root = handle.get_root_folder()
        stack = [(root.get_sub_folder(i), "") for i in reversed(range(root.number_of_sub_folders))]
        while stack:
            folder, parent = stack.pop()
            name = folder.name or ""
            path_text = f"{parent}/{name}" if parent else name
            counts = FolderCounts(path_text, folder.number_of_sub_messages)
            for i in range(folder.number_of_sub_messages):
                item = folder.get_sub_message(i)  # contacts and other items have no attachments
                counts.attachments += getattr(item, "number_of_attachments", 0)
            summary.folders.append(counts)
            stack.extend((folder.get_sub_folder(i), path_text) for i in reversed(range(folder.number_of_sub_folders)))
    finally:
        handle.close()
    return summary


_MESSAGE_FILE = re.compile(r"^\d+$")
_ATTACHMENT_FILE = re.compile(r"^\d+-.+")
_EMBEDDED_PART = re.compile(rb"^Content-Type: message/rfc822", re.MULTILINE | re.IGNORECASE)


def readpst_summary(path: str | os.PathLike[str], *, store_name: str | None = None) -> Summary:
    """Folders and counts as readpst (libpst) reports them.

    readpst writes one file per message (``-S``) in one folder per PST folder, and each
    attachment by value as ``N-filename`` beside it; embedded messages stay inside their
    parent as ``message/rfc822`` parts. It skips empty folders, and it names the top
    folder after the store, so compare with :meth:`Summary.by_subtree_path`. It writes
    no file for a by-reference attachment (there are no bytes), and it writes a message's
    RTF body as ``N-rtf-body.rtf``, which is not an attachment and is not counted.
    """
    p = check_pst_file(path)
    if shutil.which("readpst") is None:
        raise UsageError("readpst is not installed (Debian/Ubuntu: apt-get install pst-utils)")
    with tempfile.TemporaryDirectory(prefix="pstfast-readpst-") as out:
        proc = subprocess.run(
            # -j 0: no forked workers; readpst's children share one file offset and, on
            # large files, now and then skip an item (seen with libpst 0.6.76)
            ["readpst", "-j", "0", "-D", "-S", "-o", out, str(p)],
            capture_output=True, text=True, errors="replace", check=False,
        )
        if proc.returncode != 0:
            raise CorruptPstError(f"{p}: readpst failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        summary = Summary("readpst")
        root = Path(out)
        tops = [d for d in root.iterdir() if d.is_dir()]
        for top in tops:
            for folder_dir, _, files in sorted(os.walk(top)):
                rel = Path(folder_dir).relative_to(top)
                path_text = TOP if str(rel) == "." else f"{TOP}/{rel.as_posix()}"
                counts = FolderCounts(path_text)
                for name in files:
                    if _MESSAGE_FILE.match(name):
                        counts.messages += 1
                        data = (Path(folder_dir) / name).read_bytes()
                        counts.attachments += len(_EMBEDDED_PART.findall(data))
                    elif _ATTACHMENT_FILE.match(name) and not name.endswith("-rtf-body.rtf"):
                        counts.attachments += 1
                summary.folders.append(counts)
    return summary


@dataclass
class Report:
    """What ``pstfast inspect`` prints."""

    path: Path
    libpff: Summary
    readpst: Summary | None = None

    def mismatches(self) -> list[str]:
        """Folders whose readpst counts differ from libpff's (empty folders excepted)."""
        if self.readpst is None:
            return []
        theirs = self.readpst.by_subtree_path()
        out = []
        for folder in self.libpff.folders:
            other = theirs.get(folder.path.partition("/")[2])
            if folder.messages == 0 and other is None:
                continue  # readpst writes nothing for empty folders
            if other is None or (other.messages, other.attachments) != (folder.messages, folder.attachments):
                got = "missing" if other is None else f"{other.messages} messages, {other.attachments} attachments"
                out.append(f"{folder.path}: libpff {folder.messages} messages, {folder.attachments} attachments; readpst {got}")
        known = self.libpff.by_subtree_path()
        out += [f"{f.path}: only readpst sees it" for f in self.readpst.folders
                if f.path.partition("/")[2] not in known and f.messages]
        return out

    def render(self) -> str:
        lines = [f"{self.path}: {len(self.libpff.folders)} folders, {self.libpff.messages} messages, "
                 f"{self.libpff.attachments} attachments (libpff)"]
        for folder in self.libpff.folders:
            depth = folder.path.count("/")
            lines.append(f"  {'  ' * depth}{folder.path.rsplit('/', 1)[-1]}: {folder.messages} messages, "
                         f"{folder.attachments} attachments")
        if self.readpst is not None:
            problems = self.mismatches()
            if problems:
                lines.append("readpst disagrees:")
                lines += [f"  {p}" for p in problems]
            else:
                lines.append(f"readpst agrees: {self.readpst.messages} messages, {self.readpst.attachments} attachments")
        return "\n".join(lines)


def inspect_pst(path: str | os.PathLike[str], *, readpst: bool = False) -> Report:
    """Summarise a PST with libpff, and optionally cross-check it with readpst.

    Raises:
        NotAPstError: the file is not a PST.
        CorruptPstError: libpff cannot open it, or readpst's counts differ.
        MissingDependencyError: libpff (``pstfast[libpff]``) is not installed.
    """
    summary = libpff_summary(path)
    report = Report(Path(path), summary)
    if readpst:
        report.readpst = readpst_summary(path)
        if report.mismatches():
            raise CorruptPstError(f"{path}: readers disagree:\n" + report.render())
    return report
