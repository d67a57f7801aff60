"""Searchable body text: the plain text a reviewer searches, from whichever body a message has.

A message carries its body as PR_BODY (plain text), PR_HTML and/or PR_RTF_COMPRESSED;
many non-Outlook clients store only HTML, older Exchange stores only RTF, and some
messages keep their only real HTML inside the RTF (``\\fromhtml1``). :func:`body_text`
picks, in order: PR_BODY when it is not blank; else text from the HTML (PR_HTML, or the
HTML recovered from the RTF); else the text of native RTF. :func:`html_to_text` uses
selectolax (lexbor, MIT): the fastest of the parsers measured that got every Outlook-HTML
case right (perf/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

from selectolax.lexbor import LexborHTMLParser

from ..pst.rtf import RtfError, decompress_rtf, rtf_encapsulated_html, rtf_to_text

__all__ = ["Body", "body_text", "html_to_text"]


@dataclass(frozen=True)
class Body:
    """The bodies of one message as rows carry them."""

    text: str | None
    source: str | None  # plain | html | rtf | None
    html: str | None
    rtf: str | None  # the decompressed RTF (7-bit RTF text), kept so nothing is lost
    problem: str | None = None  # why the RTF could not be read, when it could not


def body_text(plain: str | None, html: str | None, rtf_compressed: bytes | None) -> Body:
    """The searchable body of a message from its PR_BODY, PR_HTML and PR_RTF_COMPRESSED."""
    rtf: bytes | None = None
    problem = None
    if rtf_compressed:
        from .kernels import (
            lzfu_decompress,  # numba: only in the processes that read items
        )

        try:
            rtf = decompress_rtf(rtf_compressed, lzfu_decompress)
        except RtfError as exc:
            problem = f"PR_RTF_COMPRESSED unreadable: {exc}"
    rtf_text = rtf.decode("latin-1").replace("\x00", "") if rtf else None
    if html is None and rtf is not None:
        try:
            html = rtf_encapsulated_html(rtf)
        except RtfError as exc:
            problem = f"RTF body unreadable: {exc}"
    if plain is not None and plain.strip():
        return Body(plain, "plain", html, rtf_text, problem)
    if html is not None:
        text = html_to_text(html)
        if text:
            return Body(text, "html", html, rtf_text, problem)
    if rtf is not None and html is None:
        try:
            text = rtf_to_text(rtf).strip()
        except RtfError as exc:
            return Body(plain, None, html, rtf_text, f"RTF body unreadable: {exc}")
        if text:
            return Body(text, "rtf", html, rtf_text, problem)
    return Body(plain, "plain" if plain else None, html, rtf_text, problem)


# Elements whose content is never visible text.  <xml> and the Office
# namespaced elements appear in Outlook HTML outside conditional comments.
_DROP_TAGS = ["head", "script", "style", "noscript", "template", "title", "xml", "iframe", "object", "svg", "math"]

# Block-level elements: a line break before and after each.
_BLOCK_TAGS = (
    "p,div,li,ul,ol,dl,dt,dd,tr,table,thead,tbody,tfoot,caption,blockquote,pre,"
    "h1,h2,h3,h4,h5,h6,hr,address,article,aside,center,details,summary,fieldset,"
    "figure,figcaption,footer,form,header,main,nav,section,menu,dir,listing,xmp,plaintext"
)
_CELL_TAGS = "td,th"


# Private-use code points mark inserted breaks, so that source newlines
# (insignificant whitespace in HTML) can be collapsed without losing the
# breaks that <br> and block elements make.  S/E = block start/end.
_BR, _S, _E = "\ue000", "\ue001", "\ue002"
_MARKS = re.compile("[\ue000-\ue002]")
_BREAK_RUN = re.compile(" ?[\ue000-\ue002][ \ue000-\ue002]*")
_EMPTY_BLOCK = re.compile("\ue001\ue000*\ue002")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, one line per block element.

    Never raises for a ``str`` argument (anything else yields ``""``).
    """
    if not isinstance(html, str) or not html:
        return ""
    try:
        return _html_to_text(html)
    except Exception:  # noqa: BLE001 - a body must never stop an extract
        try:
            # Lone surrogates (from a bad UTF-16 decode upstream) cannot be
            # encoded to the UTF-8 that lexbor wants; retry with them replaced.
            return _html_to_text(html.encode("utf-8", "replace").decode("utf-8"))
        except Exception:  # noqa: BLE001
            return ""


# lexbor's tree builder is quadratic in nesting depth (100k nested <div>:
# ~20 s), so documents that nest deeper than this get the linear regex path.
_MAX_NESTING = 3000
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*>")
# Void and implicitly-closed elements do not deepen the tree.
_FLAT_TAGS = frozenset(
    "area base br col embed hr img input link meta param source track wbr p li dt dd tr td th "
    "option optgroup tbody thead tfoot colgroup rb rt rp html head body o:p".split()
)


def _too_deep(html: str) -> bool:
    if html.count("<") < _MAX_NESTING:
        return False
    depth = 0
    for m in _TAG.finditer(html):
        name = m.group(2).lower()
        if name in _FLAT_TAGS:
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        elif not m.group().endswith("/>"):
            depth += 1
            if depth > _MAX_NESTING:
                return True
    return False


_RX_DROP = re.compile(
    r"<(script|style|head|title|noscript|template|xml|iframe|object|svg|math)\b(?:.*?</\1\s*>|.*\Z)"
    r"|<!--(?:.*?-->|.*\Z)|<![^>]*>|<\?[^>]*>",
    re.S | re.I,
)
_RX_BLOCK = re.compile(r"<(/?)(%s)\b[^>]*>" % _BLOCK_TAGS.replace(",", "|"), re.I)
_RX_BR = re.compile(r"<br\b[^>]*>", re.I)
_RX_CELL = re.compile(r"</?t[dh]\b[^>]*>", re.I)
_RX_ANY_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def _regex_html_to_text(html: str) -> str:
    # Linear fallback for pathological nesting; same output conventions.
    html = _RX_DROP.sub(" ", html)
    html = _RX_BLOCK.sub(lambda m: _E if m.group(1) else _S, html)
    html = _RX_CELL.sub(" ", _RX_BR.sub(_BR, html))
    text = unescape(_RX_ANY_TAG.sub("", html))
    text = " ".join(text.split())
    return _BREAK_RUN.sub(_break, text).strip()


def _html_to_text(html: str) -> str:
    if _MARKS.search(html):
        html = _MARKS.sub(" ", html)
    if "\x00" in html:
        # PostgreSQL text cannot hold NUL; browsers drop it too.
        html = html.replace("\x00", "")
    if _too_deep(html):
        return _regex_html_to_text(html)
    tree = LexborHTMLParser(html)
    tree.strip_tags(_DROP_TAGS, recursive=True)
    for node in tree.css("br"):
        node.insert_after(_BR)
    for node in tree.css(_BLOCK_TAGS):
        node.insert_before(_S)
        node.insert_after(_E)
    for node in tree.css(_CELL_TAGS):
        node.insert_after(" ")
    for pre in tree.css("pre,listing,xmp,plaintext,textarea"):
        # Newlines inside preformatted text are real line breaks.  Collect
        # first: replacing nodes while traverse() walks them crashes
        # selectolax 1.0.2 (segfault).
        texts = [t for t in pre.traverse(include_text=True) if t.is_text_node]
        for t in texts:
            s = t.text_content
            if s and "\n" in s:
                t.replace_with(s.replace("\r\n", "\n").replace("\n", _BR))
    root = tree.root
    if root is None:
        return ""
    # str.split() knows every Unicode space (nbsp, ideographic space...).
    text = " ".join(root.text(deep=True, separator="", strip=False).split())
    return _BREAK_RUN.sub(_break, text).strip()


def _break(m: re.Match[str]) -> str:
    # One line break per run of block boundaries; an empty line only where
    # the page shows one: an empty block (Outlook's <p><o:p>&nbsp;</o:p></p>,
    # Apple's <div><br></div>) or two <br> in a row.  Never more than one.
    run = m.group().replace(" ", "")
    if run.count(_BR) >= 2 or _EMPTY_BLOCK.search(run):
        return "\n\n"
    return "\n"


# --------------------------------------------------------------------------
# PR_RTF_COMPRESSED (MS-OXRTFCP)
# --------------------------------------------------------------------------
