"""Body formats: HTML -> text (extraction/bodies.py) and Outlook's RTF (pst/rtf.py), on
hand-written Outlook samples, round trips through the writer's RTF, and hostile input."""

from __future__ import annotations

import random
import struct

import pytest

from pstfast.extraction import bodies
from pstfast.extraction.bodies import html_to_text
from pstfast.pst.rtf import (
    RtfError,
    compress_rtf,
    decompress_rtf,
    make_fromhtml_rtf,
    make_native_rtf,
    rtf_encapsulated_html,
    rtf_to_text,
)


def _crlf(s: str) -> str:
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def _lf(s: str) -> str:
    return s.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------
# html_to_text
# --------------------------------------------------------------------------

OUTLOOK_HTML = """<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<style><!--
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]-->
</head>
<body lang="EN-US" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">
<div class="WordSection1">
<p class="MsoNormal">Hi Bob,<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">The numbers for the caf&eacute; &#8211; see
below.<o:p></o:p></p>
<table class="MsoTableGrid" border="1" cellspacing="0" cellpadding="0">
<tr><td width="200" valign="top"><p class="MsoNormal">Q1<o:p></o:p></p></td><td><p class="MsoNormal">1,234<o:p></o:p></p></td></tr>
<tr><td>Q2</td><td>5,678</td></tr>
</table>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>From:</b> Alice &lt;alice@example.com&gt; <br>
<b>Sent:</b> Monday, March 3, 2025 10:15 AM<br>
<b>Subject:</b> RE: numbers<o:p></o:p></p>
</div>
<blockquote style="margin-left:30pt"><p class="MsoNormal">\u65e5\u672c\u8a9e\u306e\u30e1\u30fc\u30eb<o:p></o:p></p></blockquote>
</div>
</body>
</html>
"""

OUTLOOK_TEXT = (
    "Hi Bob,\n\nThe numbers for the caf\u00e9 \u2013 see below.\nQ1\n1,234\nQ2 5,678\n\n"
    "From: Alice <alice@example.com>\nSent: Monday, March 3, 2025 10:15 AM\nSubject: RE: numbers\n"
    "\u65e5\u672c\u8a9e\u306e\u30e1\u30fc\u30eb"
)


def test_outlook_html():
    assert html_to_text(OUTLOOK_HTML) == OUTLOOK_TEXT


@pytest.mark.parametrize(
    "html, text",
    [
        ("<p>line one<br>line two<br/>line three</p>", "line one\nline two\nline three"),
        ("<table><tr><td>a</td><td>1</td></tr><tr><td>b</td><td>2</td></tr></table>after", "a 1\nb 2\nafter"),
        ("<ul><li>one</li><li>two</li></ul><ol><li>three</ol>", "one\ntwo\nthree"),
        ("<body><script>alert(1)</script><noscript>ns</noscript>visible<style>.x{}</style></body>", "visible"),
        ("<head><title>Subject</title></head><body>body</body>", "body"),
        ("a<!-- hidden -->b<!--[if mso]>c<![endif]-->", "ab"),
        ("<h1>Title</h1>text<blockquote>quoted<p>para</p></blockquote>end", "Title\ntext\nquoted\npara\nend"),
        ("<h2>a</h2><h3>b</h3><h6>c</h6>", "a\nb\nc"),
        ("<p>  lots   of\n\n spaces\tand\ttabs  </p>", "lots of spaces and tabs"),
        ("<p>a</p><p></p><p></p><p></p><p>b</p>", "a\n\nb"),
        ("a<br><br><br><br>b", "a\n\nb"),
        ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),
        ("<div><p>a</p></div><div><p>b</p></div>", "a\nb"),
        ("<p>a<br></p><p>b</p>", "a\nb"),
        ("<div>x<span>y</span>z</div>", "xyz"),
        ("<pre>code  line1\ncode line2</pre>", "code line1\ncode line2"),
        ("&lt;not a tag&gt; &quot;q&quot; &#x41;&#66; &euro;&nbsp;5", '<not a tag> "q" AB \u20ac 5'),
        ("<p>unclosed <b>bold <i>both</p><p>next", "unclosed bold both\nnext"),
        ("<p>\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u00fcber \U0001F600</p>", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u00fcber \U0001F600"),
        ("plain text, no tags", "plain text, no tags"),
        ("  \n\t ", ""),
        ("", ""),
        ("x\ue000y\ue001z", "x y z"),  # our private markers in input are not line breaks
        ("a\x00b", "ab"),
    ],
)
def test_html_cases(html, text):
    assert html_to_text(html) == text


def test_html_non_str_never_raises():
    assert html_to_text(None) == ""  # type: ignore[arg-type]
    assert html_to_text(b"<p>x</p>") == ""  # type: ignore[arg-type]


HOSTILE_HTML = {
    "deep_div": "<div>" * 50_000 + "x" + "</div>" * 50_000,
    "deep_span": "<span>" * 50_000 + "x",
    "lt": "<" * 300_000,
    "truncated_tag": OUTLOOK_HTML[: len(OUTLOOK_HTML) // 2] + '<p class="Mso',
    "unterminated_comment": "<p>before</p><!-- " + OUTLOOK_HTML,
    "unterminated_script": "<p>before</p><script>" + "x" * 100_000,
    "entities": "&#99999999999; &#0; &#xD800; &amp &ampamp; & &#x110000; &nbsp" * 2000,
    "huge_attr": '<p title="' + "a" * 300_000 + '">x</p>',
    "lone_surrogates": "<p>a\ud800b\udfffc</p>" * 100,
    "nested_tables": "<table><tr><td>" * 3000 + "x",
    "unclosed_p": "<p>x" * 30_000,
    "misnested": "<b><i>" * 5000 + "x" + "</b></i>" * 5000,
    "adoption": "<a><p>x" * 3000,
    "xml_decl": '<?xml version="1.0" encoding="utf-8"?><html><body><p>x</p></body></html>',
    "frameset": "<frameset><frame src=x></frameset>",
    "svg": "<svg><text>t</text></svg><math><mi>x</mi></math>ok",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HTML))
def test_html_hostile(name):
    out = html_to_text(HOSTILE_HTML[name])
    assert isinstance(out, str)
    assert "\x00" not in out


def test_html_hostile_content_kept():
    assert html_to_text(HOSTILE_HTML["deep_div"]) == "x"
    assert html_to_text(HOSTILE_HTML["unterminated_script"]) == "before"
    assert html_to_text(HOSTILE_HTML["svg"]) == "ok"


def test_html_deep_nesting_takes_the_linear_path():
    # lexbor's tree builder is quadratic in nesting depth: past the guard the linear pass runs
    h = "<div>" * 200_000 + "<p>deep</p>" + "</div>" * 200_000
    assert bodies._too_deep(h) and not bodies._too_deep("<div>" * 100 + "x" + "</div>" * 100)
    assert html_to_text(h) == "deep"


def test_regex_fallback_matches_lexbor_on_ordinary_html():
    no_pre = OUTLOOK_HTML
    assert bodies._regex_html_to_text(no_pre) == html_to_text(no_pre)


def test_html_random_fuzz_never_raises():
    rng = random.Random(1)
    alphabet = ["<", ">", "/", "p", "div", "br", "&", "#", ";", "x", "!--", "-->", " ", "\n", "\x00",
                "script", "style", "\u00e9", "\ud800", "=", '"', "'", "table", "td", "tr", "pre"]
    for _ in range(500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        assert isinstance(html_to_text(s), str)


# --------------------------------------------------------------------------
# compressed RTF (MS-OXRTFCP)
# --------------------------------------------------------------------------

# MS-OXRTFCP 3.1.2 example: compressed stream with a dictionary reference
# that overlaps the write position.
SPEC_LZFU = bytes.fromhex("1a0000001c0000004c5a4675e2d44b51410004205758595a0d6e7d010eb0")


def test_decompress_spec_example():
    assert decompress_rtf(SPEC_LZFU) == b"{\\rtf1 WXYZWXYZWXYZWXYZWXYZ}"


def test_decompress_mela():
    rtf = b"{\\rtf1\\ansi hello}"
    mela = struct.pack("<II4sI", len(rtf) + 12, len(rtf), b"MELA", 0) + rtf
    assert decompress_rtf(mela) == rtf
    assert compress_rtf(rtf, compressed=False) == mela


@pytest.mark.parametrize(
    "rtf",
    [
        b"",
        b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n",
        make_native_rtf("caf\u00e9 \u65e5\u672c \U0001F600\n" * 3),
        make_fromhtml_rtf("<html><body><p>x</p></body></html>"),
        bytes(range(256)) * 3,
        # > 4096 bytes: the 4 KiB dictionary wraps around.
        bytes(random.Random(5).choice(b"{}\\abc rtf\r\n") for _ in range(9000)),
    ],
)
def test_compress_roundtrip(rtf):
    assert decompress_rtf(compress_rtf(rtf)) == rtf
    assert decompress_rtf(compress_rtf(rtf, compressed=False)) == rtf


def test_decompress_corrupt_inputs_raise_rtferror():
    good = compress_rtf(b"{\\rtf1\\ansi hello world hello world}")
    bad = [
        b"",
        b"short",
        good[:8] + b"XXXX" + good[12:],  # unknown magic
        good[:-3],  # truncated
        struct.pack("<I", 5) + good[4:],  # size field smaller than header
        good[:12] + b"\x00\x00\x00\x00" + good[16:],  # CRC mismatch
        good[:20] + bytes([good[20] ^ 0xFF]) + good[21:],  # payload flipped
        struct.pack("<II4sI", 12 + 3, 100, b"MELA", 0) + b"abc",  # MELA shorter than raw size
        struct.pack("<II4sI", 12 + 3, 3, b"MELA", 1) + b"abc",  # MELA with non-zero CRC
    ]
    for data in bad:
        with pytest.raises(RtfError):
            decompress_rtf(data)
    with pytest.raises(RtfError):
        decompress_rtf("not bytes")  # type: ignore[arg-type]
    assert issubclass(RtfError, ValueError)


def test_decompress_fuzz_only_rtferror():
    rng = random.Random(2)
    good = compress_rtf(make_native_rtf("fuzz me " * 20))
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        try:
            out = decompress_rtf(bytes(data))
        except RtfError:
            continue
        assert isinstance(out, bytes)


# --------------------------------------------------------------------------
# \fromhtml1 de-encapsulation (MS-OXRTFEX)
# --------------------------------------------------------------------------

# Written by hand after the MS-OXRTFEX 3.1 examples and Outlook's output:
# fonts with their own code pages (cp1251, cp932), \htmlrtf groups around
# RTF-only rendering, a field, an mhtmltag, \uN escapes and \'hh escapes.
OUTLOOK_FROMHTML_RTF = rb"""{\rtf1\ansi\ansicpg1252\fromhtml1 \fbidis \deff0{\fonttbl
{\f0\fswiss\fcharset0 Arial;}
{\f1\fmodern Courier New;}
{\f2\fnil\fcharset2 Symbol;}
{\f3\fmodern\fcharset0 Courier New;}
{\f4\fswiss\fcharset204 Arial Cyr;}
{\f5\fnil\fcharset128 MS PGothic;}}
{\colortbl\red0\green0\blue0;\red5\green99\blue193;}
\uc1\pard\plain\deftab360 \f0\fs24 
{\*\htmltag19 <html>}
{\*\htmltag2 \par }
{\*\htmltag34 <head>}
{\*\htmltag1 \par }
{\*\htmltag241 <meta http-equiv="Content-Type" content="text/html; charset=utf-8">}
{\*\htmltag241 <style><!--\par p.MsoNormal \{margin:0cm;\}\par --></style>}
{\*\htmltag42 </head>}
{\*\htmltag2 \par }
{\*\htmltag50 <body lang=EN-US>}\htmlrtf \viewkind5\htmlrtf0 
{\*\htmltag64}\htmlrtf {\htmlrtf0 
{\*\htmltag96 <div class=WordSection1>}\htmlrtf {\htmlrtf0 
{\*\htmltag64 <p class=MsoNormal>}\htmlrtf {\htmlrtf0 Caf\'e9 \'93quoted\'94 price \'80 5{\*\htmltag84 &nbsp;}\htmlrtf \'a0\htmlrtf0 ok{\*\htmltag244 <o:p>}{\*\htmltag252 </o:p>}
\htmlrtf \par
}\htmlrtf0 
{\*\htmltag72 </p>}
{\*\htmltag64 <p class=MsoNormal>}\htmlrtf {\htmlrtf0 {\*\htmltag148 <span lang=RU>}\htmlrtf {\f4 \htmlrtf0 \'cf\'f0\'e8\'e2\'e5\'f2\htmlrtf }\htmlrtf0 {\*\htmltag156 </span>} {\*\htmltag148 <span lang=JA>}\htmlrtf {\f5 \htmlrtf0 \'93\'fa\'96\'7b\'8c\'ea\htmlrtf }\htmlrtf0 {\*\htmltag156 </span>} \u8364\'3f \u-10179?\u-8704?{\*\htmltag244 <o:p>}{\*\htmltag252 </o:p>}
\htmlrtf \par
}\htmlrtf0 
{\*\htmltag72 </p>}
{\*\htmltag84 <a href="https://example.com/?a=1&amp;b=2">}\htmlrtf {\field{\*\fldinst{HYPERLINK "https://example.com/?a=1&b=2"}}{\fldrslt\cf1\ul \htmlrtf0 link \{x\} back\\slash\htmlrtf }\htmlrtf0 \htmlrtf }\htmlrtf0 {\*\htmltag92 </a>}
{\*\mhtmltag84 <img src="cid:image001.png@01D00000.00000000">}{\*\htmltag84 <img src="image001.png" alt="logo">}\htmlrtf {\pict\pngblip 89504e47}\htmlrtf0
{\*\htmltag104 </div>}\htmlrtf }\htmlrtf0 
\htmlrtf }\htmlrtf0 
{\*\htmltag58 </body>}
{\*\htmltag27 </html>}
{\*\htmltag3 \par }}"""

OUTLOOK_FROMHTML_HTML = (
    "<html>\r\n<head>\r\n"
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "<style><!--\r\np.MsoNormal {margin:0cm;}\r\n--></style></head>\r\n"
    "<body lang=EN-US><div class=WordSection1>"
    "<p class=MsoNormal>Caf\u00e9 \u201cquoted\u201d price \u20ac 5&nbsp;ok<o:p></o:p></p>"
    "<p class=MsoNormal><span lang=RU>\u041f\u0440\u0438\u0432\u0435\u0442</span> "
    "<span lang=JA>\u65e5\u672c\u8a9e</span> \u20ac \U0001F600<o:p></o:p></p>"
    '<a href="https://example.com/?a=1&amp;b=2">link {x} back\\slash</a>'
    '<img src="image001.png" alt="logo"></div></body></html>\r\n'
)


def test_outlook_fromhtml_sample():
    assert rtf_encapsulated_html(OUTLOOK_FROMHTML_RTF) == OUTLOOK_FROMHTML_HTML


def test_outlook_fromhtml_sample_compressed_and_to_text():
    z = compress_rtf(OUTLOOK_FROMHTML_RTF)
    html = rtf_encapsulated_html(decompress_rtf(z))
    assert html == OUTLOOK_FROMHTML_HTML
    assert html_to_text(html) == (
        "Caf\u00e9 \u201cquoted\u201d price \u20ac 5 ok\n"
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u65e5\u672c\u8a9e \u20ac \U0001F600\nlink {x} back\\slash"
    )


def test_not_fromhtml_returns_none():
    assert rtf_encapsulated_html(make_native_rtf("hello")) is None
    assert rtf_encapsulated_html(b"{\\rtf1\\ansi\\ansicpg1252\\fromtext \\deff0 text}") is None
    # \fromhtml1 after the header (in text) does not count.
    assert rtf_encapsulated_html(b"{\\rtf1\\ansi hello {\\fromhtml1 x}}") is None
    assert rtf_encapsulated_html(b"{\\rtf1\\ansi\\fromhtml0 x}") is None


def test_fromhtml_ansicpg_applies_in_htmltag():
    rtf = b"{\\rtf1\\ansi\\ansicpg1251\\fromhtml1 \\deff0{\\fonttbl{\\f0\\fswiss\\fcharset204 Arial;}}" \
          b"{\\*\\htmltag84 <p title=\"\\'cf\">}\\'cf{\\*\\htmltag72 </p>}}"
    assert rtf_encapsulated_html(rtf) == '<p title="\u041f">\u041f</p>'


@pytest.mark.parametrize(
    "html",
    [
        OUTLOOK_HTML,
        OUTLOOK_FROMHTML_HTML,
        "<html><body><p>caf\u00e9 &amp; \u65e5\u672c\u8a9e \U0001F600 \u0444</p>\n<p>{braces} back\\slash\ttab</p></body></html>",
        "<p>no html/body wrapper</p> trailing text < not a tag",
        "<html><body>text with\r\nCRLF and\nLF and\rCR</body></html>",
        "<body><p>unterminated tag at end <b",
        "",
    ],
)
def test_fromhtml_roundtrip(html):
    rtf = make_fromhtml_rtf(html)
    assert rtf.startswith(b"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl")
    assert rtf_encapsulated_html(rtf) == _crlf(html)
    assert rtf_encapsulated_html(decompress_rtf(compress_rtf(rtf))) == _crlf(html)


def test_fromhtml_roundtrip_random():
    rng = random.Random(3)
    pieces = ["<p>", "</p>", "<br>", "<b>", "</b>", "&nbsp;", "&amp;", "text", " ", "\n", "\t", "{", "}",
              "\\", "\u00e9", "\u20ac", "\u65e5", "\U0001F600", "<!-- c -->", "<a href='x'>", "</a>", "'", '"']
    for _ in range(200):
        h = "<html><body>" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) + "</body></html>"
        assert rtf_encapsulated_html(make_fromhtml_rtf(h)) == _crlf(h)


# --------------------------------------------------------------------------
# native RTF -> text
# --------------------------------------------------------------------------


def test_rtf_to_text_cp1252():
    rtf = b"{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fnil\\fcharset0 Calibri;}}" \
          b"\\f0 Caf\\'e9 na\\'efve \\'93q\\'94 \\'80\\par Stra\\'dfe}"
    assert rtf_to_text(rtf) == "Caf\u00e9 na\u00efve \u201cq\u201d \u20ac\nStra\u00dfe"


def test_rtf_to_text_cp932_by_ansicpg_and_by_fcharset():
    ja = "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8"
    esc = "".join("\\'%02x" % b for b in ja.encode("cp932")).encode()
    by_ansicpg = b"{\\rtf1\\ansi\\ansicpg932\\deff0{\\fonttbl{\\f0\\fnil MS Gothic;}}\\f0 " + esc + b"}"
    by_font = b"{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fnil\\fcharset0 Arial;}{\\f1\\fnil\\fcharset128 MS Gothic;}}" \
              b"\\f0 a{\\f1 " + esc + b"}b}"
    by_cpg = b"{\\rtf1\\ansi\\ansicpg1252{\\fonttbl{\\f1\\fnil\\cpg932 X;}}\\f1 " + esc + b"}"
    assert rtf_to_text(by_ansicpg) == ja
    assert rtf_to_text(by_font) == "a" + ja + "b"
    assert rtf_to_text(by_cpg) == ja


def test_rtf_to_text_unicode_escapes():
    rtf = (b"{\\rtf1\\ansi\\ansicpg1252\\uc1 \\u8364\\'80 \\u-10179?\\u-8704? "
           b"{\\uc2 \\u26085\\'93\\'fa}{\\uc0 \\u26412}\\u1092?x}")
    assert rtf_to_text(rtf) == "\u20ac \U0001F600 \u65e5\u672c\u0444x"


def test_rtf_to_text_structure():
    rtf = (b"{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0\\green0\\blue0;}"
           b"{\\stylesheet{\\s0 Normal;}}{\\info{\\title T}{\\author A}}{\\*\\generator Riched20;}"
           b"{\\*\\unknowndest junk}one\\tab two\\line three\\par "
           b"{\\field{\\*\\fldinst{HYPERLINK \"http://x\"}}{\\fldrslt link}}"
           b"\\~nb\\-sp\\{\\}\\\\ {\\pict\\pngblip 0123abcd}\\bin3 {}}zz end}")
    assert rtf_to_text(rtf) == "one\ttwo\nthree\nlink\xa0nbsp{}\\ zz end"


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "",
        "Caf\u00e9 na\u00efve \u20ac5 \u201cquoted\u201d \u2014 dash",
        "\u65e5\u672c\u8a9e\u306e\u30e1\u30fc\u30eb\n\u0420\u0443\u0441\u0441\u043a\u0438\u0439\n\U0001F600 emoji",
        "braces {like} this and back\\slash\tand tab",
        "  leading and trailing spaces  \n\nblank line above\n",
        "digits after escapes: \u00e91 \u65e52 \\par not a word",
        "\x01\x7f\x80\x81\x9f control-ish",
    ],
)
def test_native_roundtrip(text):
    rtf = make_native_rtf(text)
    assert rtf_to_text(rtf) == _lf(text)
    assert rtf_to_text(decompress_rtf(compress_rtf(rtf))) == _lf(text)
    assert rtf_encapsulated_html(rtf) is None


def test_native_roundtrip_random():
    rng = random.Random(4)
    chars = "ab \n\t{}\\\u00e9\u20ac\u65e5\U0001F600\u0444?'0123"
    for _ in range(300):
        t = "".join(rng.choice(chars) for _ in range(rng.randint(0, 60)))
        assert rtf_to_text(make_native_rtf(t)) == t


def test_rtf_to_text_nul_dropped():
    assert rtf_to_text(b"{\\rtf1 a\\'00b\\u0?c}") == "abc"


# --------------------------------------------------------------------------
# hostile RTF: never hang, never raise anything but RtfError
# --------------------------------------------------------------------------

HOSTILE_RTF = {
    "not_rtf": b"hello world",
    "empty": b"",
    "only_header": b"{\\rtf",
    "unbalanced_open": b"{\\rtf1 " + b"{" * 200_000 + b"text",
    "unbalanced_close": b"{\\rtf1 a}}}}}}} trailing",
    "deep_groups": b"{\\rtf1 " + b"{\\b " * 100_000 + b"x" + b"}" * 100_000 + b"}",
    "huge_param": b"{\\rtf1\\ansicpg99999999999999999\\uc99999999999\\u99999999999 x\\f-99999999 y}",
    "bad_codepage": b"{\\rtf1\\ansi\\ansicpg12345 \\'e9\\'ff x}",
    "bin_overflow": b"{\\rtf1 a\\bin999999999 zzz}",
    "bin_negative": b"{\\rtf1 a\\bin-5 b}",
    "broken_hex": b"{\\rtf1 \\'zz \\'4 \\'",
    "trailing_backslash": b"{\\rtf1 a\\",
    "long_word": b"{\\rtf1 \\" + b"a" * 100_000 + b" x}",
    "uc_skip_over_group": b"{\\rtf1\\uc5\\u1000{x}y}",
    "fromhtml_garbage": b"{\\rtf1\\ansi\\fromhtml1 {\\*\\htmltag" + b"\\'" * 50_000,
    "fromhtml_unclosed_tag": b"{\\rtf1\\ansi\\fromhtml1 {\\*\\htmltag84 <p>" + b"x" * 100_000,
    "surrogates": b"{\\rtf1 \\u-10179?\\u-10179? \\u-8704?}",
    "nul_bytes": b"{\\rtf1 \x00\x00\\'00}" + b"\x00" * 1000,
    "random_bytes": b"{\\rtf1 " + bytes(random.Random(9).randrange(256) for _ in range(100_000)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RTF))
def test_rtf_hostile(name):
    data = HOSTILE_RTF[name]
    for f in (rtf_to_text, rtf_encapsulated_html):
        try:
            out = f(data)
        except RtfError:
            continue
        assert out is None or (isinstance(out, str) and "\x00" not in out)


def test_rtf_hostile_not_rtf_raises():
    for bad in (b"", b"hello", b"\x00\x01", "a str"):
        with pytest.raises(RtfError):
            rtf_to_text(bad)  # type: ignore[arg-type]
        with pytest.raises(RtfError):
            rtf_encapsulated_html(bad)  # type: ignore[arg-type]


def test_rtf_fuzz_only_rtferror():
    rng = random.Random(6)
    seeds = [OUTLOOK_FROMHTML_RTF, make_native_rtf("fuzz \u00e9\u65e5 text\n" * 5)]
    tokens = [b"{", b"}", b"\\", b"\\'", b"\\u", b"-", b"9", b"\\par", b"\\htmlrtf", b"\\*", b"\\bin3 ",
              b"\\uc9", b"\\f", b"\\fonttbl", b"\x80", b"\x00", b" "]
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i:i + rng.randint(0, 3)] = rng.choice(tokens)
        for f in (rtf_to_text, rtf_encapsulated_html):
            try:
                f(bytes(data))
            except RtfError:
                pass
