"""Text out of one attachment's bytes: the format kernels of the attachment text step.

Everything here runs inside a sandboxed worker process (:mod:`pstfast.enrich.attachments`
starts it and kills it on a hang): a parser fed a hostile file may loop, allocate without
bound or crash, and none of that may reach the index stage. Each function takes bytes and
returns an :class:`Extracted` (status, text, extractor name); it raises only for a file
the library could not read, which the caller turns into ``failed: <reason>``.

Libraries (the ``[text]`` extra; why these: docs/dependencies.md): pypdfium2 (PDF),
python-docx, openpyxl, python-pptx (OOXML), xlrd (legacy XLS), charset-normalizer (plain
text); HTML and RTF use the body converters pstfast already has.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

#: statuses of an attachment_texts row (a failure is ``failed: <reason>``)
STATUSES = ("ok", "empty", "encrypted", "unsupported", "too_large", "failed")
#: bumped when any extractor's output changes: rows of an older version are redone
VERSION = "1"


@dataclass(frozen=True)
class Limits:
    """Per-attachment limits of the attachment text step."""

    #: wall-clock seconds one attachment may take before its worker is killed
    seconds: float = 30.0
    #: attachments larger than this are not read (``too_large``)
    max_bytes: int = 50 * 1024 * 1024
    #: PDF pages and slides read; the rest is left out (the text says so)
    max_pages: int = 500
    #: characters of text kept per attachment (the index cuts further)
    max_chars: int = 2_000_000
    #: zip archives: nesting depth and members read
    zip_depth: int = 2
    zip_members: int = 200
    #: address space of a worker process (a decompression bomb fails there, not the host)
    memory_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class Extracted:
    """What one attachment gave."""

    status: str
    text: str
    extractor: str
    reason: str | None = None


class EncryptedDocument(Exception):
    """The document needs a password."""


class NotText(Exception):
    """Bytes with a text name or type that are not text."""


def _pdf(data: bytes, limits: Limits) -> str:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedDocument(str(exc)) from None
        raise
    try:
        parts = []
        for number in range(min(len(pdf), limits.max_pages)):
            page = pdf[number]
            textpage = page.get_textpage()
            parts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return "\n".join(parts)
    finally:
        pdf.close()


def _docx(data: bytes, limits: Limits) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _xlsx(data: bytes, limits: Limits) -> str:
    import openpyxl

    # read_only streams the sheets' XML instead of building every cell object
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        parts: list[str] = []
        size = 0
        for sheet in book.worksheets:
            parts.append(str(sheet.title))
            for row in sheet.iter_rows(values_only=True):
                line = "\t".join("" if v is None else str(v) for v in row).rstrip("\t")
                if line:
                    parts.append(line)
                    size += len(line)
                if size > limits.max_chars:
                    return "\n".join(parts)
        return "\n".join(parts)
    finally:
        book.close()


def _pptx(data: bytes, limits: Limits) -> str:
    import pptx

    deck = pptx.Presentation(io.BytesIO(data))
    parts: list[str] = []
    for number, slide in enumerate(deck.slides):
        if number >= limits.max_pages:
            break
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    parts.append("\t".join(cell.text for cell in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(parts)


def _xls(data: bytes, limits: Limits) -> str:
    import xlrd

    book = xlrd.open_workbook(file_contents=data, on_demand=True)
    parts: list[str] = []
    for sheet in book.sheets():
        parts.append(sheet.name)
        for r in range(sheet.nrows):
            line = "\t".join(str(v) for v in sheet.row_values(r) if v not in ("", None))
            if line:
                parts.append(line)
    return "\n".join(parts)


def decode_text(data: bytes) -> str:
    """Plain text in any charset: UTF-8 (with or without BOM) and UTF-16 with a BOM as
    they are, anything else as charset-normalizer guesses it."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    return str(best) if best is not None and len(data) <= 1_000_000 else data.decode(
        best.encoding if best is not None else "cp1252", "replace")


def _html(data: bytes, limits: Limits) -> str:
    from ..extraction.bodies import html_to_text

    return html_to_text(decode_text(data))


def _rtf(data: bytes, limits: Limits) -> str:
    from ..pst.rtf import rtf_encapsulated_html, rtf_to_text

    html = rtf_encapsulated_html(data)
    if html is not None:
        from ..extraction.bodies import html_to_text

        return html_to_text(html)
    return rtf_to_text(data)


def _plain(data: bytes, limits: Limits) -> str:
    text = decode_text(data)
    sample = text[:20_000]
    junk = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in "\t\n\r\f"))
    if sample and junk > len(sample) // 20:
        # binary bytes behind a text name: some decoder always "succeeds", and its output is noise
        raise NotText(f"{junk} of the first {len(sample)} characters are control or undecodable")
    return text


_OOXML = {"word/document.xml": "docx", "xl/workbook.xml": "xlsx", "ppt/presentation.xml": "pptx"}
_BY_EXTENSION = {
    "pdf": "pdf", "docx": "docx", "docm": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "pptx": "pptx", "pptm": "pptx",
    "xls": "xls", "doc": "doc", "ppt": "ppt", "htm": "html", "html": "html", "rtf": "rtf", "zip": "zip",
    "txt": "text", "csv": "text", "tsv": "text", "log": "text", "md": "text", "json": "text", "xml": "text",
    "eml": "text", "ics": "text", "vcf": "text",
}
#: the kind -> (extractor, the library that reads it)
_KERNELS: dict[str, tuple[Callable[[bytes, Limits], str], str]] = {
    "pdf": (_pdf, "pypdfium2"), "docx": (_docx, "python-docx"), "xlsx": (_xlsx, "openpyxl"),
    "pptx": (_pptx, "python-pptx"), "xls": (_xls, "xlrd"), "html": (_html, "selectolax"),
    "rtf": (_rtf, "pstfast-rtf"), "text": (_plain, "charset-normalizer"),
}


def sniff(data: bytes, filename: str | None, mime_type: str | None) -> str:
    """The kind of document *data* is: the bytes decide where they can (a renamed file is
    read as what it is), else the file name's extension, else the MIME type."""
    head = data[:8]
    ext = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return _BY_EXTENSION.get(ext, "zip")
        for member, kind in _OOXML.items():
            if member in names:
                return kind
        return "zip" if ext not in ("docx", "xlsx", "pptx") else _BY_EXTENSION[ext]
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2 compound file: legacy Office
        if "EncryptedPackage".encode("utf-16-le") in data[:1_000_000]:
            return "encrypted-ooxml"  # a password-protected DOCX/XLSX/PPTX is an OLE2 wrapper
        return _BY_EXTENSION.get(ext, "ole") if ext in ("xls", "doc", "ppt") else "ole"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    mime = (mime_type or "").lower()
    if mime == "text/html":
        return "html"
    if mime.startswith("text/"):
        return "text"
    start = data[:512].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "binary"


def _zip(data: bytes, limits: Limits, depth: int) -> tuple[str, list[str]]:
    """The text of an archive's members (nested archives to *limits.zip_depth*), each
    headed by its name; with the members skipped and why."""
    parts: list[str] = []
    skipped: list[str] = []
    size = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        for number, member in enumerate(members):
            if number >= limits.zip_members:
                skipped.append(f"{len(members) - number} more members")
                break
            if member.flag_bits & 0x1:
                skipped.append(f"{member.filename}: encrypted")
                continue
            if member.file_size > limits.max_bytes or size + member.file_size > limits.max_bytes:
                skipped.append(f"{member.filename}: too large")
                continue
            inner = archive.read(member)
            size += len(inner)
            result = extract(inner, member.filename, None, limits, depth + 1)
            if result.text:
                parts.append(f"[{member.filename}]\n{result.text}")
            if result.status not in ("ok", "empty") or result.reason:
                skipped.append(f"{member.filename}: {result.reason or result.status}")
    return "\n\n".join(parts), skipped


def extract(data: bytes, filename: str | None, mime_type: str | None, limits: Limits = Limits(),
            depth: int = 0) -> Extracted:
    """The text of one attachment, never raising: a file no library could read is
    ``failed`` with the reason."""
    if len(data) > limits.max_bytes:
        return Extracted("too_large", "", "none", f"{len(data):,} bytes > {limits.max_bytes:,}")
    kind = sniff(data, filename, mime_type)
    if kind == "zip":
        if depth >= limits.zip_depth:
            return Extracted("unsupported", "", "zipfile", f"archive nested deeper than {limits.zip_depth}")
        try:
            text, skipped = _zip(data, limits, depth)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            return Extracted("failed", "", "zipfile", f"{type(exc).__name__}: {str(exc)[:200]}")
        reason = "; ".join(skipped)[:500] or None
        return Extracted("ok" if text.strip() else "empty", text[: limits.max_chars], "zipfile", reason)
    if kind == "encrypted-ooxml":
        return Extracted("encrypted", "", "none", "password-protected Office document")
    if kind not in _KERNELS:
        what = {"doc": "legacy Word (.doc)", "ppt": "legacy PowerPoint (.ppt)", "ole": "an OLE2 compound file",
                "binary": "no text format recognised"}.get(kind, kind)
        return Extracted("unsupported", "", "none", what)
    kernel, library = _KERNELS[kind]
    try:
        text = kernel(data, limits)
    except EncryptedDocument as exc:
        return Extracted("encrypted", "", library, str(exc)[:200] or "password required")
    except NotText as exc:
        return Extracted("unsupported", "", library, f"binary data, not text ({exc})")
    except MemoryError:
        return Extracted("too_large", "", library, "ran out of the worker's memory limit")
    except Exception as exc:  # noqa: BLE001 - any parser error is this file's status, never the stage's
        message = str(exc)
        if "encrypt" in message.lower() or "password" in message.lower():
            return Extracted("encrypted", "", library, message[:200])
        return Extracted("failed", "", library, f"{type(exc).__name__}: {message[:200]}")
    text = text.replace("\x00", "")[: limits.max_chars]
    return Extracted("ok" if text.strip() else "empty", text, library)
