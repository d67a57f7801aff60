"""Outlook's RTF bodies: compressed RTF (MS-OXRTFCP) and HTML encapsulated in RTF (MS-OXRTFEX).

* :func:`decompress_rtf` / :func:`compress_rtf`: PR_RTF_COMPRESSED (``LZFu`` or ``MELA``)
  <-> RTF bytes, with the ``compressed-rtf`` library (MIT);
* :func:`rtf_encapsulated_html`: the original HTML of a ``\\fromhtml1`` RTF body
  (implemented here: RTFDE, the Python peer, is LGPL-3.0 and ~80x slower);
* :func:`rtf_to_text`: the plain text of native RTF (\\ansicpg, \\fcharset, \\'hh and
  \\uN decoded; emoji kept whole);
* :func:`make_fromhtml_rtf` / :func:`make_native_rtf`: RTF the way Outlook writes it, for
  the PST writer.

Every function raises only :class:`RtfError` (a ``ValueError``) on bad data.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Callable

import compressed_rtf

from .crc import crc32

__all__ = [
    "RtfError",
    "decompress_rtf",
    "compress_rtf",
    "rtf_encapsulated_html",
    "rtf_to_text",
    "make_fromhtml_rtf",
    "make_native_rtf",
]


class RtfError(ValueError):
    """RTF data (compressed or not) that cannot be read."""


_HEADER = struct.Struct("<II4sI")


def decompress_rtf(data: bytes, lzfu: Callable[[bytes], bytes | None] | None = None) -> bytes:
    """RTF bytes from a PR_RTF_COMPRESSED value (``LZFu`` or ``MELA``).

    *lzfu* (the tokens after the header) -> RTF, or None to decline, is a faster LZFu decoder
    (the extract's compiled kernel); compressed-rtf is the reference and the fallback.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RtfError(f"compressed RTF must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise RtfError(f"compressed RTF too short ({len(data)} bytes, header is 16)")
    comp_size, raw_size, magic, _crc = _HEADER.unpack_from(data)
    if magic not in (b"LZFu", b"MELA"):
        raise RtfError(f"unknown RTF compression type {magic!r}")
    if comp_size < 12:
        raise RtfError(f"compressed RTF size field {comp_size} is smaller than the header")
    if comp_size + 4 > len(data):
        raise RtfError(f"compressed RTF truncated: header says {comp_size + 4} bytes, have {len(data)}")
    if magic == b"MELA" and raw_size > comp_size - 12:
        raise RtfError(f"uncompressed RTF truncated: header says {raw_size} bytes, have {comp_size - 12}")
    if magic == b"LZFu" and lzfu is not None:
        tokens = data[_HEADER.size:comp_size + 4]
        if crc32(tokens) != _crc:
            raise RtfError("corrupt compressed RTF: CRC is invalid")
        try:
            fast = lzfu(tokens)
        except ValueError as e:
            raise RtfError(f"corrupt compressed RTF: {e}") from e
        if fast is not None:
            return fast
    try:
        # compressed_rtf checks the CRC of LZFu data; it raises bare
        # Exception (and struct.error on odd lengths), hence the broad catch.
        return bytes(compressed_rtf.decompress(data))
    except Exception as e:  # noqa: BLE001
        raise RtfError(f"corrupt compressed RTF: {e}") from e


def compress_rtf(rtf: bytes, compressed: bool = True) -> bytes:
    """PR_RTF_COMPRESSED value for ``rtf`` (``LZFu``, or ``MELA`` if not ``compressed``).

    Pure Python and slow (about 35 KB/s): meant for test writers only.
    """
    if not isinstance(rtf, (bytes, bytearray, memoryview)):
        raise RtfError(f"RTF must be bytes, not {type(rtf).__name__}")
    return bytes(compressed_rtf.compress(bytes(rtf), compressed=compressed))


# --------------------------------------------------------------------------
# RTF reading (shared by de-encapsulation and plain-text extraction)
# --------------------------------------------------------------------------

# One RTF token.  Control-word names and parameters are length-capped as the
# RTF spec caps them, so hostile input cannot build huge ints.
_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?[0-9]{1,10})? ?"  # 1,2: control word [param] [delimiter]
    rb"|\\'([0-9a-fA-F]{2})"  # 3: \'hh
    rb"|\\([^a-zA-Z'])"  # 4: control symbol
    rb"|([{}])"  # 5: group
    rb"|([^\\{}\r\n]+)"  # 6: text run
    rb"|[\r\n]+"  # ignored
    rb"|\\",  # backslash at end of data or before a broken \'h
    re.S,
)

# \fcharset -> Windows code page (RTF spec, \fcharset table).
_CHARSET_CP = {
    0: 1252, 1: 1252, 2: 1252, 77: 10000, 78: 10001, 79: 10003, 80: 10008, 81: 10002,
    83: 10005, 84: 10004, 85: 10006, 86: 10081, 87: 10021, 88: 10029, 89: 10007,
    128: 932, 129: 949, 130: 1361, 134: 936, 136: 950, 161: 1253, 162: 1254, 163: 1258,
    177: 1255, 178: 1256, 179: 1256, 180: 1256, 181: 1255, 186: 1257, 204: 1251,
    222: 874, 238: 1250, 254: 437, 255: 850,
}

# Destinations whose content is not document text.
_SKIP_DESTS = frozenset(
    b"""fonttbl colortbl stylesheet info pict object objdata header headerl headerr
    headerf footer footerl footerr footerf footnote annotation atnid atnauthor
    fldinst themedata colorschememapping datastore latentstyles listtable
    listoverridetable rsidtbl xmlnstbl filetbl revtbl pgdsctbl generator
    nonshppict shpinst bkmkstart bkmkend txe xe tc private userprops docvar
    passwordhash mmathPr author operator title subject comment keywords doccomm
    company category manager hlinkbase buptim creatim printim revtim
    listtext pntext pntxta pntxtb""".split()
)

_SYMBOLS = {
    b"par": "\n", b"line": "\n", b"tab": "\t", b"cell": "\t", b"row": "\n",
    b"page": "\n", b"sect": "\n", b"lquote": "\u2018", b"rquote": "\u2019",
    b"ldblquote": "\u201c", b"rdblquote": "\u201d", b"bullet": "\u2022",
    b"endash": "\u2013", b"emdash": "\u2014", b"enspace": "\u2002",
    b"emspace": "\u2003", b"qmspace": "\u2005", b"zwj": "\u200d",
    b"zwnj": "\u200c", b"ltrmark": "\u200e", b"rtlmark": "\u200f",
}
_CONTROL_SYMBOLS = {b"\\": "\\", b"{": "{", b"}": "}", b"~": "\xa0", b"_": "\u2011", b"\n": "\n", b"\r": "\n"}

# Deeper groups than this share their parent's state: keeps memory bounded
# on input like b"{" * 10**7 without changing the meaning of real documents.
_MAX_DEPTH = 4096


def _codec(cp: int) -> str:
    for name in (f"cp{cp}", f"mac{_MAC.get(cp, '')}"):
        try:
            return codecs.lookup(name).name
        except LookupError:
            pass
    return "cp1252"


_MAC = {10000: "roman", 10006: "greek", 10007: "cyrillic", 10029: "latin2", 10079: "iceland", 10081: "turkish"}


def _as_rtf_bytes(rtf: bytes) -> bytes:
    if not isinstance(rtf, (bytes, bytearray, memoryview)):
        raise RtfError(f"RTF must be bytes, not {type(rtf).__name__}")
    rtf = bytes(rtf)
    if not rtf.lstrip(b" \t\r\n\x00").startswith(b"{\\rtf"):
        raise RtfError("not RTF: data does not start with {\\rtf")
    return rtf


def _is_fromhtml(rtf: bytes) -> bool:
    # MS-OXRTFEX 2.2.3.1: \fromhtml1 sits in the header, among the first
    # control words of the outer group, before any text or nested group.
    pos, words = rtf.find(b"{"), 0
    m = _TOKEN.match(rtf, pos + 1)
    while m is not None and words < 10:
        if m.lastindex is None:  # line break between header words
            m = _TOKEN.match(rtf, m.end())
            continue
        if m.lastindex not in (1, 2):
            return False
        if m.group(1) == b"fromhtml":
            return m.group(2) in (None, b"1")
        words += 1
        m = _TOKEN.match(rtf, m.end())
    return False


def _read_rtf(rtf: bytes, html: bool) -> str:
    """Walk the RTF once; emit document text, or with ``html`` the HTML of a
    ``\\fromhtml1`` document (htmltag groups plus non-\\htmlrtf text)."""
    out: list[str] = []
    buf = bytearray()  # undecoded bytes of the current text run
    buf_cp = 0
    fonts: dict[int, int] = {}  # font number -> code page
    ansicp = 1252
    deff: int | None = None
    deftbl_font: int | None = None  # font being defined inside \fonttbl

    # Group state: (skip, htmlrtf, font, uc, in_htmltag, dest)
    skip, htmlrtf, font, uc, in_tag, dest = False, False, None, 1, False, b""
    stack: list[tuple[bool, bool, int | None, int, bool, bytes]] = []
    overflow = 0
    ucskip = 0  # bytes still to skip after a \uN
    new_group = False  # just after "{": the next word may name a destination
    star = False  # just after "{\*"
    pos, n = 0, len(rtf)
    start = rtf.find(b"{")
    pos = start if start >= 0 else n
    match = _TOKEN.match

    def flush() -> None:
        nonlocal buf
        if buf:
            out.append(buf.decode(_codec(buf_cp), "replace"))
            buf = bytearray()

    def emit_bytes(b: bytes) -> None:
        nonlocal buf_cp
        cp = ansicp if (in_tag or font is None) else fonts.get(font, ansicp)
        if cp != buf_cp:
            flush()
            buf_cp = cp
        buf.extend(b)

    def emit(s: str) -> None:
        flush()
        out.append(s)

    while pos < n:
        m = match(rtf, pos)
        if m is None:  # unreachable by construction; be safe on odd bytes
            pos += 1
            continue
        pos = m.end()
        kind = m.lastindex
        if kind == 5:  # group
            ucskip = 0
            if m.group(5) == b"{":
                if len(stack) >= _MAX_DEPTH:
                    overflow += 1
                else:
                    stack.append((skip, htmlrtf, font, uc, in_tag, dest))
                new_group, star = True, False
            else:
                if overflow:
                    overflow -= 1
                elif not stack:
                    break  # extra "}" : treat as end of document
                else:
                    leaving = dest
                    skip, htmlrtf, font, uc, in_tag, dest = stack.pop()
                    if leaving == b"fonttbl" and dest != b"fonttbl":
                        deftbl_font = None
                    if not stack:
                        break  # closing brace of the document
                new_group = star = False
            continue

        visible = not skip and not (html and (htmlrtf or not in_tag and _dest_hidden(dest)))

        if kind == 1 or kind == 2:
            word = m.group(1)
            param = m.group(2)
            if new_group or star:
                # First word of a group: a destination?
                if star:
                    if html and word in (b"htmltag",):
                        in_tag, dest = True, b"htmltag"
                    else:
                        skip, dest = True, word
                elif word in _SKIP_DESTS:
                    skip, dest = True, word
                    if word == b"fonttbl":
                        skip = True
                elif word == b"fldrslt":
                    dest = word
                new_group = star = False
                if dest == b"fonttbl" and word == b"fonttbl":
                    continue
            if dest == b"fonttbl":
                # Font table: only the number -> code page map matters.
                if word == b"f" and param is not None:
                    deftbl_font = int(param)
                    fonts.setdefault(deftbl_font, ansicp)
                elif word == b"fcharset" and param is not None and deftbl_font is not None:
                    fonts[deftbl_font] = _CHARSET_CP.get(int(param), ansicp)
                elif word == b"cpg" and param is not None and deftbl_font is not None:
                    fonts[deftbl_font] = int(param)
                continue
            if word == b"bin":
                # \binN: N raw bytes follow; never text we can use.
                if param is not None and int(param) > 0:
                    pos = min(n, pos + int(param))
                continue
            if ucskip and word not in (b"u",):
                ucskip = 0
            if word == b"htmlrtf":
                htmlrtf = param != b"0"
            elif word == b"f" and param is not None:
                font = int(param)
            elif word == b"plain":
                font = deff
            elif word == b"ansicpg" and param is not None:
                ansicp = int(param)
            elif word == b"deff" and param is not None:
                deff = font = int(param)
            elif word == b"uc" and param is not None:
                uc = max(0, int(param))
            elif word == b"u" and param is not None:
                ucskip = 0
                if visible:
                    emit(chr(int(param) & 0xFFFF))
                ucskip = uc
            elif word == b"pard" or word == b"sectd":
                pass
            elif visible:
                s = _SYMBOLS.get(word)
                if s is not None:
                    if html:
                        # MS-OXRTFEX: \par is CRLF, \tab is TAB; other
                        # RTF-only formatting has no HTML form.
                        if word in (b"par", b"line"):
                            emit("\r\n")
                        elif word == b"tab":
                            emit("\t")
                        elif word not in (b"cell", b"row", b"page", b"sect"):
                            emit(s)
                    else:
                        emit(s)
            continue

        if kind == 4:  # control symbol
            sym = m.group(4)
            if sym == b"*":
                star = True
                continue
            new_group = False
            if ucskip:
                ucskip = 0
            if visible and dest != b"fonttbl":
                s = _CONTROL_SYMBOLS.get(sym)
                if s is not None:
                    if html and s == "\n":
                        s = "\r\n"
                    emit(s)
            continue

        new_group = star = False
        if kind == 3:  # \'hh
            if ucskip:
                ucskip -= 1
                continue
            if visible and dest != b"fonttbl":
                emit_bytes(bytes((int(m.group(3), 16),)))
            continue
        if kind == 6:  # text
            t = m.group(6)
            if ucskip:
                k = min(ucskip, len(t))
                ucskip -= k
                t = t[k:]
            if t and visible and dest != b"fonttbl":
                emit_bytes(t)
            continue
        # newlines / stray backslash: nothing
    flush()
    text = "".join(out)
    # \uN gives UTF-16 code units; join surrogate pairs, replace lone halves.
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    # PostgreSQL text cannot hold NUL (\'00, \u0 in hostile RTF).
    return text.replace("\x00", "") if "\x00" in text else text


_SURROGATE = re.compile("[\ud800-\udfff]")


def _dest_hidden(dest: bytes) -> bool:
    # In a \fromhtml1 document only htmltag content and top-level text are
    # HTML; any other destination (fldrslt excepted) is RTF-only.
    return dest not in (b"", b"fldrslt")


def rtf_encapsulated_html(rtf: bytes) -> str | None:
    """The original HTML of a ``\\fromhtml1`` RTF document, else ``None``.

    Line breaks come back as CRLF (MS-OXRTFEX allows that normalisation).
    """
    rtf = _as_rtf_bytes(rtf)
    if not _is_fromhtml(rtf):
        return None
    try:
        return _read_rtf(rtf, html=True)
    except RtfError:
        raise
    except Exception as e:  # noqa: BLE001 - promise: only RtfError escapes
        raise RtfError(f"unreadable RTF: {e}") from e


def rtf_to_text(rtf: bytes) -> str:
    """Plain text of an RTF document (``\\par`` -> newline, NULs dropped)."""
    rtf = _as_rtf_bytes(rtf)
    try:
        return _read_rtf(rtf, html=False)
    except Exception as e:  # noqa: BLE001
        raise RtfError(f"unreadable RTF: {e}") from e


# --------------------------------------------------------------------------
# RTF writing (for test PSTs)
# --------------------------------------------------------------------------


def _rtf_escape(text: str, cp: str = "cp1252", newline: bytes = b"\\par\r\n") -> bytes:
    """RTF text bytes for ``text``: ASCII as is, code-page characters as
    \\'hh, anything else as \\uN with a '?' fallback (\\uc1)."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        i += 1
        o = ord(c)
        if c in "\\{}":
            out += b"\\" + c.encode()
        elif c == "\r":
            if i < n and text[i] == "\n":
                i += 1
            out += newline
        elif c == "\n":
            out += newline
        elif c == "\t":
            out += b"\\tab "
        elif 0x20 <= o < 0x7F:
            out.append(o)
        else:
            try:
                b = c.encode(cp)
            except UnicodeEncodeError:
                for unit in struct.unpack(f"<{len(c.encode('utf-16-le', 'surrogatepass')) // 2}h",
                                          c.encode("utf-16-le", "surrogatepass")):
                    out += b"\\u%d?" % unit
            else:
                out += b"".join(b"\\'%02x" % x for x in b)
    return bytes(out)


def make_native_rtf(text: str) -> bytes:
    """RTF for plain ``text`` as Outlook writes a native RTF body (cp1252)."""
    return (
        b"{\\rtf1\\ansi\\ansicpg1252\\deff0\\nouicompat\\deflang1033"
        b"{\\fonttbl{\\f0\\fswiss\\fcharset0 Calibri;}}\r\n"
        b"{\\*\\generator Riched20 16.0.4027}\\viewkind4\\uc1 \r\n"
        b"\\pard\\sa200\\sl276\\slmult1\\f0\\fs22\\lang9 "
        + _rtf_escape(text)
        + b"}"
    )


_HTML_TAG = re.compile(r"<!--.*?-->|<[^>]*>|<[^>]*\Z", re.S)


def make_fromhtml_rtf(html: str) -> bytes:
    """RTF encapsulating ``html`` as Outlook does (MS-OXRTFEX).

    Markup goes into ``{\\*\\htmltagN ...}`` groups; text between tags is
    written as RTF text, with \\htmlrtf groups carrying the RTF-only
    rendering (paragraph marks), which the de-encapsulator drops.
    """
    parts = [
        b"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0"
        b"{\\fonttbl{\\f0\\fswiss\\fcharset0 Arial;}{\\f1\\fmodern Courier New;}"
        b"{\\f2\\fnil\\fcharset2 Symbol;}{\\f3\\fmodern\\fcharset0 Courier New;}"
        b"{\\f4\\fswiss\\fcharset0 \"Calibri\";}}\r\n"
        b"{\\colortbl\\red0\\green0\\blue0;\\red5\\green99\\blue193;}\r\n"
        b"\\uc1\\pard\\plain\\deftab360 \\f0\\fs24 \r\n"
    ]
    seen_body = False
    pos = 0
    for m in _HTML_TAG.finditer(html):
        if m.start() > pos:
            parts.append(_fromhtml_text(html[pos:m.start()], seen_body))
        tag = m.group()
        lower = tag[:6].lower()
        flag = 19 if lower.startswith("<html") else 34 if lower.startswith("<head") else \
            50 if lower.startswith("<body") else 241 if tag.startswith("<!") else 72
        parts.append(b"{\\*\\htmltag%d %s}" % (flag, _rtf_escape(tag, newline=b"\\par ")))
        if lower.startswith("<body") and not seen_body:
            seen_body = True
            parts.append(b"\\htmlrtf \\viewkind5\\htmlrtf0 {\\*\\htmltag64}")
        elif seen_body and lower[:3] in ("<p>", "<p ", "</p") or lower.startswith(("<br", "</div")):
            parts.append(b"\\htmlrtf \\par\r\n\\htmlrtf0 ")
        pos = m.end()
    if pos < len(html):
        parts.append(_fromhtml_text(html[pos:], seen_body))
    parts.append(b"}")
    return b"".join(parts)


def _fromhtml_text(text: str, in_body: bool) -> bytes:
    if not in_body or text.isspace() or "&" in text:
        # Whitespace outside the body and text with character references
        # have no faithful RTF form: keep them as an htmltag, as Outlook does.
        return b"{\\*\\htmltag%d %s}" % (0 if text.isspace() else 8, _rtf_escape(text, newline=b"\\par "))
    return b"\\htmlrtf {\\f4\\fs22 \\htmlrtf0 " + _rtf_escape(text, newline=b"\\par ") + b"\\htmlrtf }\\htmlrtf0 "
