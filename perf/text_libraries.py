"""Compare attachment text libraries on generated documents: MB/s per core and coverage.

The choice behind the ``[text]`` extra (docs/dependencies.md). Run it in a virtualenv that
has the candidates (they are not pstfast dependencies)::

    python -m venv /tmp/cand && /tmp/cand/bin/pip install kreuzberg 'markitdown[pdf,docx,xlsx,pptx]' \
        extractous pypdfium2 python-docx openpyxl python-pptx fpdf2 charset-normalizer selectolax
    PYTHONPATH=. /tmp/cand/bin/python perf/text_libraries.py

Each library reads each kind of document (made by pstfast.synthetic.documents, with a
planted phrase and filler to ~0.2-1 MB) several times in one process; a library "covers" a
kind when its text has the phrase. Prints one JSON object.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

from pstfast.enrich.textract import extract as pstfast_extract
from pstfast.synthetic import documents

PHRASE = "heliotrope anchovy settlement"
FILLER = {"pdf": 400, "docx": 400, "xlsx": 8000, "pptx": 60, "html": 2000, "text": 2000, "zip": 400}


def _kreuzberg() -> Callable[[bytes, str, str], str]:
    from kreuzberg import extract_bytes_sync

    return lambda data, ext, mime: str(extract_bytes_sync(data, mime).content)


def _extractous() -> Callable[[bytes, str, str], str]:
    from extractous import Extractor

    extractor = Extractor()
    return lambda data, ext, mime: str(extractor.extract_bytes_to_string(bytearray(data))[0])


def _markitdown() -> Callable[[bytes, str, str], str]:
    from markitdown import MarkItDown, StreamInfo

    md = MarkItDown()
    return lambda data, ext, mime: str(md.convert_stream(io.BytesIO(data), stream_info=StreamInfo(
        extension="." + ext, mimetype=mime)).text_content)


def _pstfast() -> Callable[[bytes, str, str], str]:
    return lambda data, ext, mime: pstfast_extract(data, "x." + ext, mime).text


def measure(reader: Callable[[bytes, str, str], str], docs: dict[str, bytes], seconds: float = 1.5) -> dict[str, Any]:
    """MB/s (one core) and coverage per kind."""
    out: dict[str, Any] = {}
    for kind, data in docs.items():
        ext, mime = documents.KINDS[kind]
        try:
            text = reader(data, ext, mime)
        except Exception as exc:  # noqa: BLE001 - a library that cannot read a kind is a result
            out[kind] = {"covered": False, "error": f"{type(exc).__name__}: {str(exc)[:100]}"}
            continue
        runs, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            reader(data, ext, mime)
            runs += 1
        elapsed = time.perf_counter() - t0
        out[kind] = {"covered": PHRASE in " ".join(text.split()), "mb_per_s": round(len(data) * runs / elapsed / 1e6, 2)}
    return out


def main() -> None:
    """Print the comparison as JSON."""
    docs = {kind: documents.make(kind, PHRASE, FILLER[kind]) for kind in documents.KINDS}
    results: dict[str, Any] = {"sizes": {k: len(v) for k, v in docs.items()}}
    for name, factory in {"pstfast (pypdfium2 + python-docx/openpyxl/python-pptx)": _pstfast,
                          "kreuzberg": _kreuzberg, "extractous": _extractous, "markitdown": _markitdown}.items():
        try:
            reader = factory()
        except ImportError as exc:
            results[name] = f"not installed: {exc}"
            continue
        results[name] = measure(reader, docs)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
