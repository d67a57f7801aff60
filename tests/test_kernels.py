"""The numba kernels agree with their plain-Python references and with the xxhash package.

Expected values in the hand-written examples are derived by hand from the rules in the
``pstfast.extraction.kernels`` docstring; the property tests compare each batched kernel with its
one-value-at-a-time reference (and XXH3-128 with the independent ``xxhash`` C library).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pstfast.extraction import kernels

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    # compile (or load from the on-disk cache) once, outside any example's timing
    assert kernels.warm_up() >= 0.0


@pytest.fixture(autouse=True)
def _always_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    # every batch in this file takes the compiled path, however small
    monkeypatch.setattr(kernels, "JIT_MIN_BATCH", 0)


def test_small_batches_take_the_references_with_equal_results(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [" <MAILTO:A@B.example> ", None, "RE: Fwd:  AW[2]: Hello \t World ", "x" * 300, "\u3000a\u00a0"]
    bodies = ["b\u3000 c", None, "  tabs\tand\nlines  "] * 2
    heads = ["h1\x1f", "h2\x1f", "\u00e9\x1f"] * 2
    compiled = [kernels.normalize_addresses(values), kernels.normalize_subjects(values),
                kernels.normalize_whitespace(values), kernels.content_hashes(heads, bodies)]
    monkeypatch.setattr(kernels, "JIT_MIN_BATCH", 10_000)
    monkeypatch.setattr(kernels, "_compiled", lambda n, kernel: n >= kernels.JIT_MIN_BATCH)  # as on a cold cache
    reference = [kernels.normalize_addresses(values), kernels.normalize_subjects(values),
                 kernels.normalize_whitespace(values), kernels.content_hashes(heads, bodies)]
    assert compiled == reference
    assert reference[1][2] == "hello world"  # derived by hand from the rules


def test_small_batches_take_the_kernels_once_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded kernels (warm_up: the module fixture here, the fork server in an extract) take
    every batch: a shard's few embedded messages hash ~3x faster than by the references."""
    def reference(*args: object) -> None:
        raise AssertionError("a reference ran")

    monkeypatch.setattr(kernels, "JIT_MIN_BATCH", 10_000)
    for name in ("ref_normalize_address", "ref_normalize_subject", "ref_normalize_whitespace"):
        monkeypatch.setattr(kernels, name, reference)
    assert kernels.normalize_addresses(["A@B.example"]) == ["a@b.example"]
    assert kernels.normalize_subjects(["RE: Hi"]) == ["hi"]
    assert kernels.normalize_whitespace([" a \u3000b "]) == ["a b"]
    assert len(kernels.content_hashes(["h\x1f"], ["  b  "])[0]) == 32


# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------

# fragments that hit every rule: prefixes, brackets, colons, whitespace of each kind,
# quotes, multi-byte characters, NUL and the decoder's separator candidates
_FRAGMENTS = [
    "re", "RE", "Re", "rE", "fw", "FW", "fwd", "Fwd", "aw", "AW", "wg", "sv", "SV", "vs",
    "antw", "Antw", "tr", "TR", "rif", "RIF", "rex", "fwx",
    ":", "\uff1a", "[", "]", "(", ")", "1", "23", "[2]", "(10)", "[]",
    " ", "  ", "\t", "\n", "\r\n", "\f", "\v", "\u00a0", "\u3000", "\u2003", "\x1c", "\x85",
    "<", ">", '"', "'", "mailto:", "MAILTO:", "smtp:", "SMTP:", "mailto", "@",
    "Bob", "ALICE", "example.COM", "é", "É", "ß", "ſ", "K", "İ", "😀", "中文", "\u00c2\u00a0",
    "\x00", "\x01", "\x02", "\x03", "\x1e", "\x1f", "x", "Z",
]  # fmt: skip

_fragment_text = st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join)
_any_text = st.one_of(st.text(max_size=60), _fragment_text, _fragment_text)
_batch = st.lists(st.one_of(st.none(), _any_text), max_size=25)


def _ref_batch(ref, values):
    return [None if v is None else ref(v) for v in values]


_CASES = [
    (kernels.normalize_addresses, kernels.ref_normalize_address),
    (kernels.normalize_subjects, kernels.ref_normalize_subject),
    (kernels.normalize_whitespace, kernels.ref_normalize_whitespace),
]
_IDS = ["address", "subject", "whitespace"]


# --------------------------------------------------------------------------------------
# hand-derived examples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  \t<Bob@Example.COM>\r\n", "bob@example.com"),
        ('"alice@x.org"', "alice@x.org"),
        ("'alice@x.org'", "alice@x.org"),
        ("< MAILTO:Carol@X.ORG >", "carol@x.org"),
        ("SMTP:dave@corp.example", "dave@corp.example"),
        ("smtp: dave@corp.example", "dave@corp.example"),
        ("mailto:<eve@x.org>", "<eve@x.org>"),  # prefix is stripped after the pair only
        ("<<x@y>>", "<x@y>"),  # one pair only
        ("<x@y", "<x@y"),  # unbalanced: kept
        ('"x@y\'', "\"x@y'"),  # mismatched quotes: kept
        ("Ünïcode@Exämple.DE", "Ünïcode@exämple.de"),  # non-ASCII untouched
        ("\u00a0a@b\u00a0", "\u00a0a@b\u00a0"),  # NBSP is not ASCII whitespace
        ("<>", ""),
        ('"', '"'),
        ("", ""),
        ("   ", ""),
    ],
)
def test_address_examples(raw: str, expected: str) -> None:
    assert kernels.ref_normalize_address(raw) == expected
    assert kernels.normalize_addresses([raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("RE: Fwd:  AW[2]: Hello  World", "hello world"),
        ("Hello World", "hello world"),
        ("  re:re:RE:  x ", "x"),
        ("Fw: FWD: fw[3]: Budget Q3", "budget q3"),
        ("SV: VS: Antw: TR: RIF: WG: aw(12): Done", "done"),
        ("Re\uff1a 会議の件", "会議の件"),  # full-width colon
        ("Re: \u3000Ünïcode DE", "\u3000Ünïcode de"),  # U+3000 is not ASCII whitespace
        ("Re :x", "re :x"),  # space before the colon: not a prefix
        ("Rex: y", "rex: y"),
        ("Re[]: y", "re[]: y"),  # brackets need digits
        ("Re[2: y", "re[2: y"),
        ("Re(2]: y", "re(2]: y"),
        ("Re:", ""),
        ("Re: Re:", ""),
        ("Subject: Re: x", "subject: re: x"),  # prefixes only at the start
        ("a\t\n\r\f\vb", "a b"),
        ("\u00a0Re: x", "\u00a0re: x"),  # NBSP is not ASCII whitespace
        ("", ""),
    ],
)
def test_subject_examples(raw: str, expected: str) -> None:
    assert kernels.ref_normalize_subject(raw) == expected
    assert kernels.normalize_subjects([raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello \t\r\n World  ", "Hello World"),
        ("a\u00a0\u00a0b\u3000c", "a b c"),
        ("\u3000\u00a0 x \u00a0\u3000", "x"),
        ("Keep CASE", "Keep CASE"),
        ("a\u2003b", "a\u2003b"),  # EM SPACE is not in the set
        ("line1\r\nline2\n\nline3", "line1 line2 line3"),
        ("\u00c2\u00a0", "\u00c2"),  # Â then NBSP: the NBSP is whitespace, Â is not
        ("\u3001\u3000x", "\u3001 x"),  # 、(E3 80 81) then U+3000
        ("", ""),
        (" \t ", ""),
    ],
)
def test_whitespace_examples(raw: str, expected: str) -> None:
    assert kernels.ref_normalize_whitespace(raw) == expected
    assert kernels.normalize_whitespace([raw]) == [expected]


def test_none_and_empty_batches() -> None:
    for batched, _ in _CASES:
        assert batched([]) == []
        assert batched([None]) == [None]
        assert batched([None, " X ", None]) == [None, batched([" X "])[0], None]
    assert kernels.xxh3_128_hexdigests([]) == []


def test_non_text_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="index 1"):
        kernels.normalize_addresses(["a@b", b"bytes"])  # type: ignore[list-item]


def test_pack_layout() -> None:
    buf, off = kernels.pack([b"ab", b"", b"cde"])
    assert buf.dtype == np.uint8 and off.dtype == np.int64
    assert buf.tobytes() == b"abcde"
    assert off.tolist() == [0, 2, 2, 5]
    buf, off = kernels.pack([])
    assert buf.size == 0 and off.tolist() == [0]


def test_xxh3_known_answers() -> None:
    # XXH3-128 of the empty input with seed 0, as published in xxHash's sanity tests
    assert kernels.xxh3_128_hexdigests([b""]) == ["99aa06d3014798d86001c324468d497f"]


# --------------------------------------------------------------------------------------
# properties: batched kernel == reference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("batched", "ref"), _CASES, ids=_IDS)
@PROPERTY
@given(values=_batch)
def test_batched_equals_reference(batched, ref, values) -> None:
    assert batched(values) == _ref_batch(ref, values)


@pytest.mark.parametrize(("batched", "ref"), _CASES, ids=_IDS)
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.text(max_size=40), max_size=8))
def test_lone_surrogates_pass_through(batched, ref, values) -> None:
    # unpaired surrogates (broken UTF-16 from a PST) must not crash or shift offsets
    values = [v + "\ud83d" for v in values] + ["\udc00 Re: X \ud800"]
    assert batched(values) == _ref_batch(ref, values)


@pytest.mark.parametrize(("batched", "ref"), _CASES, ids=_IDS)
def test_every_separator_present_uses_slow_decode(batched, ref) -> None:
    values = ["Re: \x00 A@B ", "\x01\x02\x03", " \x1e MAILTO:x\x1f ", None, "中文 Fwd: y"]
    assert batched(values) == _ref_batch(ref, values)


@pytest.mark.parametrize(("batched", "ref"), _CASES, ids=_IDS)
def test_long_values(batched, ref) -> None:
    rng = random.Random(7)
    values = [
        "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(500, 5000)))
        for _ in range(20)
    ]
    assert batched(values) == _ref_batch(ref, values)


# --------------------------------------------------------------------------------------
# properties: XXH3-128 == xxhash
# --------------------------------------------------------------------------------------

# every branch and boundary: 0, 1-3, 4-8, 9-16, 17-128, 129-240, then stripes (64),
# blocks (1024) and the last-stripe overlap around them
_BOUNDARY_LENGTHS = sorted(
    set(range(0, 301))
    | {511, 512, 513, 1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 3072, 3073}
    | {4095, 4096, 4097, 10_000, 65_536, 100_003}
)


def test_xxh3_every_length_0_to_300_and_block_boundaries() -> None:
    rng = random.Random(42)
    values = [rng.randbytes(n) for n in _BOUNDARY_LENGTHS]
    assert kernels.xxh3_128_hexdigests(values) == [xxhash.xxh3_128_hexdigest(v) for v in values]


def test_xxh3_extreme_bytes() -> None:
    # all-0x00 and all-0xFF inputs exercise carries in the 64x64->128 multiply
    values = [bytes([b]) * n for b in (0x00, 0xFF) for n in _BOUNDARY_LENGTHS]
    assert kernels.xxh3_128_hexdigests(values) == [xxhash.xxh3_128_hexdigest(v) for v in values]


@PROPERTY
@given(values=st.lists(st.binary(max_size=300), max_size=30))
def test_xxh3_short_property(values) -> None:
    assert kernels.xxh3_128_hexdigests(values) == [xxhash.xxh3_128_hexdigest(v) for v in values]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(
        st.one_of(
            st.integers(241, 5000),
            st.sampled_from([1024, 1025, 2048, 2049]).flatmap(
                lambda n: st.integers(n - 70, n + 70)
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_xxh3_long_property(lengths, seed) -> None:
    rng = random.Random(seed)
    values = [rng.randbytes(n) for n in lengths]
    assert kernels.xxh3_128_hexdigests(values) == [xxhash.xxh3_128_hexdigest(v) for v in values]


def _ref_content_hash(head: str, body: str | None) -> str:
    canonical = head + kernels.ref_normalize_whitespace(body or "")
    return xxhash.xxh3_128_hexdigest(canonical.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(pairs=st.lists(st.tuples(_any_text, st.one_of(st.none(), _any_text)), max_size=20))
def test_content_hashes_equal_reference(pairs) -> None:
    heads = [h for h, _ in pairs]
    bodies = [b for _, b in pairs]
    assert kernels.content_hashes(heads, bodies) == [_ref_content_hash(h, b) for h, b in pairs]


def test_content_hashes_long_bodies_and_errors() -> None:
    rng = random.Random(3)
    bodies = ["".join(rng.choice(_FRAGMENTS) for _ in range(n)) for n in (0, 50, 400, 3000)]
    heads = ["a@b\nre: x\n2021-03-04T05:06:07Z\n"] * len(bodies)
    assert kernels.content_hashes(heads, bodies) == [
        _ref_content_hash(h, b) for h, b in zip(heads, bodies, strict=True)
    ]
    # the body's whitespace does not change the hash; its case does
    h = ["x\n"]
    assert kernels.content_hashes(h, [" a \r\n\u00a0b "]) == kernels.content_hashes(h, ["a b"])
    assert kernels.content_hashes(h, ["A b"]) != kernels.content_hashes(h, ["a b"])
    with pytest.raises(ValueError, match="2 heads but 1 bodies"):
        kernels.content_hashes(["a", "b"], ["c"])
    with pytest.raises(TypeError):
        kernels.content_hashes([None], ["c"])  # type: ignore[list-item]
    assert kernels.content_hashes([], []) == []


def test_warm_up_reports_seconds() -> None:
    spent = kernels.warm_up()
    assert isinstance(spent, float) and spent >= 0.0


def test_cache_ready_says_whether_warm_up_would_compile(tmp_path: Path) -> None:
    # the extract's fork server warms the kernels only when this is True (loading is
    # cheap, compiling is not): True once warm_up has cached them, False on a cold cache
    kernels.warm_up()
    assert kernels.cache_ready()
    cold = subprocess.run([sys.executable, "-c", "from pstfast.extraction import kernels; print(kernels.cache_ready())"],
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}, capture_output=True, text=True,
                          check=True)
    assert cold.stdout.strip() == "False"


# --- compressed RTF (LZFu) -------------------------------------------------------------


def _lzfu_value(tokens: bytes, raw_size: int) -> bytes:
    import struct

    from pstfast.pst.crc import crc32

    return struct.pack("<II4sI", len(tokens) + 12, raw_size, b"LZFu", crc32(tokens)) + tokens


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(max_size=2000), garbage=st.binary(min_size=1, max_size=400), raw=st.integers(0, 1 << 20))
def test_lzfu_kernel_equals_the_reference(text: str, garbage: bytes, raw: int) -> None:
    """The compiled LZFu decoder gives the compressed-rtf package's bytes, or fails where it fails."""
    from pstfast.pst.rtf import RtfError, compress_rtf, decompress_rtf, make_native_rtf

    kernels.warm_up()
    for value in (compress_rtf(make_native_rtf(text)), _lzfu_value(garbage, raw)):
        try:
            want: bytes | None = decompress_rtf(value)
        except RtfError:
            want = None
        try:
            got: bytes | None = decompress_rtf(value, kernels.lzfu_decompress)
        except RtfError:
            got = None
        assert got == want
