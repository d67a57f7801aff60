"""Real documents with planted text, for writer PSTs, the attachment text tests and perf/.

Each is made by a well-kept library of its format (fpdf2 and pypdf for PDF, python-docx,
openpyxl, python-pptx, the standard library's zipfile), so what the extractors read is what
Office and PDF tools write, not a hand-rolled imitation. Needs ``pstfast[test]``.
"""

from __future__ import annotations

import io
import zipfile

from ..extras import require

#: kind -> (file name extension, MIME type)
KINDS = {
    "pdf": ("pdf", "application/pdf"),
    "docx": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "pptx": ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    "html": ("html", "text/html"),
    "text": ("txt", "text/plain"),
    "zip": ("zip", "application/zip"),
}


def _paragraphs(text: str, filler: int) -> list[str]:
    words = ("the board reviewed quarterly figures and staffing plans for the northern region "
             "while legal counsel summarised pending contracts and supplier disputes").split()
    lines = [text]
    for n in range(filler):
        lines.append(" ".join(words[(n + i) % len(words)] for i in range(24)) + ".")
    return lines


def pdf(text: str, filler: int = 0, password: str | None = None) -> bytes:
    """A PDF whose first page says *text* (then *filler* paragraphs); encrypted (AES-256)
    with *password* when given."""
    fpdf = require("fpdf", "making PDF documents")
    doc = fpdf.FPDF()
    doc.set_font("helvetica", size=11)
    doc.add_page()
    for line in _paragraphs(text, filler):
        doc.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    data = bytes(doc.output())
    if password is None:
        return data
    pypdf = require("pypdf", "encrypting PDF documents")
    reader = pypdf.PdfReader(io.BytesIO(data))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx(text: str, filler: int = 0) -> bytes:
    """A Word document: *text* in a paragraph, and a table cell that says it again."""
    docx_mod = require("docx", "making DOCX documents")
    document = docx_mod.Document()
    for line in _paragraphs(text, filler):
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "note"
    table.rows[0].cells[1].text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx(text: str, filler: int = 0) -> bytes:
    """A workbook whose first sheet has *text* in A1, then *filler* rows of numbers."""
    openpyxl = require("openpyxl", "making XLSX documents")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"] = text
    for n in range(filler):
        sheet.append([f"item {n}", n * 3, n * 0.5, "northern region"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pptx(text: str, filler: int = 0) -> bytes:
    """A deck whose first slide's title is *text*, then *filler* slides of bullet text."""
    pptx_mod = require("pptx", "making PPTX documents")
    deck = pptx_mod.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = text
    slide.placeholders[1].text = "agenda"
    for line in _paragraphs("", filler)[1:]:
        more = deck.slides.add_slide(deck.slide_layouts[1])
        more.shapes.title.text = "update"
        more.placeholders[1].text = line
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def html(text: str, filler: int = 0) -> bytes:
    """An HTML page (UTF-8) with *text* in a paragraph and a script that must not be read."""
    body = "".join(f"<p>{line}</p>" for line in _paragraphs(text, filler))
    return (f"<!DOCTYPE html><html><head><title>memo</title><script>var hidden = 'scriptword';</script></head>"
            f"<body>{body}</body></html>").encode()


def plain(text: str, filler: int = 0, encoding: str = "utf-8") -> bytes:
    """Plain text in *encoding*."""
    return "\n".join(_paragraphs(text, filler)).encode(encoding)


def zip_of(members: dict[str, bytes]) -> bytes:
    """A zip archive (deflated) of *members*."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def make(kind: str, text: str, filler: int = 0) -> bytes:
    """A document of *kind* (a key of :data:`KINDS`) saying *text*; a zip holds a DOCX and a
    text file that say it."""
    if kind == "zip":
        return zip_of({"inner/notes.txt": plain(text, filler), "inner/memo.docx": docx(text, filler)})
    return {"pdf": pdf, "docx": docx, "xlsx": xlsx, "pptx": pptx, "html": html, "text": plain}[kind](text, filler)
