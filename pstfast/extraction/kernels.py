"""Numba kernels for the per-row hot loops of the extractor.

Every kernel runs over a *batch*: the values are UTF-8 encoded once, packed into one
``uint8`` buffer plus ``int64`` offsets (``len n+1``; value ``i`` is
``buf[off[i]:off[i+1]]``, see :func:`pack`), processed by one ``@njit(cache=True)``
loop that writes into a preallocated output buffer with its own offsets, and decoded
once. ``None`` in gives ``None`` out. Each kernel has a plain-Python, one-value-at-a-time
reference (``ref_*``) that defines its semantics; the tests check they agree.

Semantics ("ASCII whitespace" is space, ``\\t``, ``\\n``, ``\\r``, ``\\f``, ``\\v``;
"ASCII-lowercase" maps ``A-Z`` to ``a-z`` and leaves every other character alone):

``normalize_addresses`` (sender / recipient SMTP addresses)
    strip ASCII whitespace; strip one pair of surrounding ``<...>``, ``"..."`` or
    ``'...'`` (and the ASCII whitespace just inside it); strip one leading ``mailto:``
    or ``smtp:``, case-insensitive (and the ASCII whitespace after it); ASCII-lowercase.
    ``" <MAILTO:Bob@Example.COM> "`` -> ``"bob@example.com"``.

``normalize_subjects`` (``normalized_subject``, the threading fallback key)
    collapse every run of ASCII whitespace to one space and strip both ends; then
    repeatedly strip a leading reply/forward prefix: one of ``re fw fwd aw wg sv vs antw
    tr rif`` (case-insensitive), optionally followed by ``[digits]`` or ``(digits)``,
    then ``:`` or the full-width colon U+FF1A, then any ASCII whitespace; finally
    ASCII-lowercase. ``"RE: Fwd:  AW[2]: Hello  World"`` -> ``"hello world"``.

``normalize_whitespace`` (bodies, before content hashing)
    collapse every run of whitespace (ASCII whitespace plus U+00A0 NO-BREAK SPACE and
    U+3000 IDEOGRAPHIC SPACE) to one ASCII space and strip both ends; case is kept.

``xxh3_128_hexdigests`` (``content_hash``)
    XXH3-128 with seed 0 and the default secret, written from the public xxHash
    specification (``doc/xxhash_spec.md``), as 32 lowercase hex digits, high 64 bits
    first: bit for bit what ``xxhash.xxh3_128_hexdigest`` returns. Numba has no 128-bit
    integers, so the 64x64->128 multiply is done with 32-bit halves.

``content_hashes`` (``content_hash``, fused)
    ``xxh3_128(UTF-8(head + normalize_whitespace(body)))`` per pair, normalizing and
    hashing in one pass so the normalized body never becomes a Python string. This is
    where the numba XXH3 pays: on bytes already in Python, calling the ``xxhash`` C
    library per value is faster than packing them for a batch (see perf/bench_kernels.py).

Compiled code is cached on disk by numba (``NUMBA_CACHE_DIR`` or ``__pycache__``);
:func:`warm_up` compiles or loads every kernel and says how long that took.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "pack",
    "normalize_addresses",
    "normalize_subjects",
    "normalize_whitespace",
    "xxh3_128_hexdigests",
    "content_hashes",
    "lzfu_decompress",
    "warm_up",
    "cache_ready",
    "ref_normalize_address",
    "ref_normalize_subject",
    "ref_normalize_whitespace",
]

# --------------------------------------------------------------------------------------
# Plain-Python references (the semantics; one value at a time)
# --------------------------------------------------------------------------------------

_ASCII_WS = " \t\n\r\f\v"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_WS_RUN = re.compile("[ \t\n\r\f\v]+")
_ANY_WS_RUN = re.compile("[ \t\n\r\f\v\u00a0\u3000]+")
# re.ASCII keeps IGNORECASE from matching e.g. U+017F LONG S as "s"
_SUBJECT_PREFIX = re.compile(
    "(?:re|fwd|fw|aw|wg|sv|vs|antw|tr|rif)(?:\\[[0-9]+\\]|\\([0-9]+\\))?[:\uff1a][ \t\n\r\f\v]*",
    re.IGNORECASE | re.ASCII,
)


def ref_normalize_address(s: str) -> str:
    """Reference address normalization (see the module docstring)."""
    s = s.strip(_ASCII_WS)
    if len(s) >= 2 and ((s[0] == "<" and s[-1] == ">") or (s[0] == s[-1] and s[0] in "\"'")):
        s = s[1:-1].strip(_ASCII_WS)
    head = s[:7].translate(_ASCII_LOWER)
    if head == "mailto:":
        s = s[7:].lstrip(_ASCII_WS)
    elif head[:5] == "smtp:":
        s = s[5:].lstrip(_ASCII_WS)
    return s.translate(_ASCII_LOWER)


def ref_normalize_subject(s: str) -> str:
    """Reference subject normalization (see the module docstring)."""
    s = _ASCII_WS_RUN.sub(" ", s).strip(" ")
    while True:
        m = _SUBJECT_PREFIX.match(s)
        if m is None:
            break
        s = s[m.end() :]
    return s.translate(_ASCII_LOWER)


def ref_normalize_whitespace(s: str) -> str:
    """Reference whitespace normalization for hashing (see the module docstring)."""
    return _ANY_WS_RUN.sub(" ", s).strip(" ")


# --------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------


def pack(values: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Pack byte strings into one ``uint8`` buffer and ``int64`` offsets (``len n+1``)."""
    n = len(values)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n:
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=n), out=offsets[1:])
    buf = np.frombuffer(b"".join(values), dtype=np.uint8)
    return buf, offsets


@njit(cache=True)
def _byte_offsets(buf, char_lens):  # pragma: no cover - compiled
    # UTF-8 (surrogatepass) has exactly one non-continuation byte per code point
    n = char_lens.shape[0]
    off = np.empty(n + 1, dtype=np.int64)
    off[0] = 0
    p = 0
    size = buf.shape[0]
    for i in range(n):
        left = char_lens[i]
        while left > 0:
            p += 1
            while p < size and (buf[p] & 0xC0) == 0x80:
                p += 1
            left -= 1
        off[i + 1] = p
    return off


# Separators for the single-decode fast path: control characters the normalizers never
# produce, so if one is absent from the input it is absent from the output.
_SEPARATORS = ("\x00", "\x01", "\x02", "\x03", "\x1e", "\x1f")


def _split_none(values: Sequence[str | None]) -> tuple[list[str], list[int]]:
    strings: list[str] = []
    nones: list[int] = []
    for i, v in enumerate(values):
        if v is None:
            nones.append(i)
            strings.append("")
        elif isinstance(v, str):
            strings.append(v)
        else:
            raise TypeError(f"expected str or None at index {i}, got {type(v).__name__}")
    return strings, nones


def _pack_text(values: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, list[int], str, bool]:
    """UTF-8 encode a batch once: (buf, offsets, indexes of None, joined text, surrogates?)."""
    n = len(values)
    try:
        joined = "".join(values)  # type: ignore[arg-type]
        strings: Sequence[str] = values  # type: ignore[assignment]
        nones: list[int] = []
    except TypeError:
        strings, nones = _split_none(values)
        joined = "".join(strings)
    try:
        encoded = joined.encode("utf-8")
        lone_surrogates = False
    except UnicodeEncodeError:  # unpaired surrogates (from broken UTF-16) pass through
        encoded = joined.encode("utf-8", "surrogatepass")
        lone_surrogates = True
    buf = np.frombuffer(encoded, dtype=np.uint8)
    char_lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    if len(encoded) == len(joined):  # all ASCII: byte offsets are character offsets
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(char_lens, out=off[1:])
    else:
        off = _byte_offsets(buf, char_lens)
    return buf, off, nones, joined, lone_surrogates


def _run_text_kernel(kernel, values: Sequence[str | None]) -> list[str | None]:
    """Encode once, run ``kernel(buf, off, out, out_off, sep)``, decode once."""
    n = len(values)
    if n == 0:
        return []
    buf, off, nones, joined, lone_surrogates = _pack_text(values)
    sep = next((s for s in _SEPARATORS if s not in joined), None)
    # every normalizer output is at most as long as its input
    out = np.empty(buf.shape[0] + n, dtype=np.uint8)
    out_off = np.empty(n + 1, dtype=np.int64)
    kernel(buf, off, out, out_off, -1 if sep is None else ord(sep))
    data = out[: out_off[n]].tobytes()
    errors = "surrogatepass" if lone_surrogates else "strict"
    if sep is not None:
        result: list[str | None] = list(data.decode("utf-8", errors).split(sep))
        result.pop()  # the text after the last separator is empty
    else:
        bounds = out_off.tolist()
        result = [data[bounds[i] : bounds[i + 1]].decode("utf-8", errors) for i in range(n)]
    for i in nones:
        result[i] = None
    return result


# --------------------------------------------------------------------------------------
# Normalizer kernels
# --------------------------------------------------------------------------------------


# byte classes for the whitespace kernel: 1 ASCII whitespace, 2/3 lead bytes of U+00A0 / U+3000
_WS_CLASS = np.zeros(256, dtype=np.uint8)
_WS_CLASS[list(b" \t\n\r\x0b\x0c")] = 1
_WS_CLASS[0xC2] = 2
_WS_CLASS[0xE3] = 3


@njit(inline="always")
def _is_ascii_ws(c):  # pragma: no cover - compiled
    return c == 32 or (c >= 9 and c <= 13)


@njit(inline="always")
def _lower(c):  # pragma: no cover - compiled
    if c >= 65 and c <= 90:
        return c + 32
    return c


@njit(inline="always")
def _starts_with_lower(buf, s, e, word, w0, w1):  # pragma: no cover - compiled
    # is buf[s:e] prefixed by word[w0:w1] (lowercase ASCII) after ASCII-lowercasing?
    if e - s < w1 - w0:
        return False
    for k in range(w1 - w0):
        if _lower(buf[s + k]) != word[w0 + k]:
            return False
    return True


_MAILTO = np.frombuffer(b"mailto:smtp:", dtype=np.uint8).copy()


@njit(cache=True)
def _addresses_kernel(buf, off, out, out_off, sep):  # pragma: no cover - compiled
    n = off.shape[0] - 1
    p = 0
    for i in range(n):
        out_off[i] = p
        s = off[i]
        e = off[i + 1]
        while s < e and _is_ascii_ws(buf[s]):
            s += 1
        while e > s and _is_ascii_ws(buf[e - 1]):
            e -= 1
        if e - s >= 2:
            a = buf[s]
            b = buf[e - 1]
            if (a == 60 and b == 62) or (a == b and (a == 34 or a == 39)):
                s += 1
                e -= 1
                while s < e and _is_ascii_ws(buf[s]):
                    s += 1
                while e > s and _is_ascii_ws(buf[e - 1]):
                    e -= 1
        skip = 0
        if _starts_with_lower(buf, s, e, _MAILTO, 0, 7):
            skip = 7
        elif _starts_with_lower(buf, s, e, _MAILTO, 7, 12):
            skip = 5
        if skip:
            s += skip
            while s < e and _is_ascii_ws(buf[s]):
                s += 1
        for k in range(s, e):
            out[p] = _lower(buf[k])
            p += 1
        if sep >= 0:
            out[p] = sep
            p += 1
    out_off[n] = p


# reply/forward prefixes, lowercase, packed with offsets
_PREFIX_WORDS = (b"re", b"fw", b"fwd", b"aw", b"wg", b"sv", b"vs", b"antw", b"tr", b"rif")
_PREFIX_BUF = np.frombuffer(b"".join(_PREFIX_WORDS), dtype=np.uint8).copy()
_PREFIX_OFF = np.cumsum([0] + [len(w) for w in _PREFIX_WORDS]).astype(np.int64)


@njit(inline="always")
def _prefix_end(out, k, end):  # pragma: no cover - compiled
    # end of a reply/forward prefix starting at out[k], or -1 if there is none
    for w in range(_PREFIX_OFF.shape[0] - 1):
        if not _starts_with_lower(out, k, end, _PREFIX_BUF, _PREFIX_OFF[w], _PREFIX_OFF[w + 1]):
            continue
        j = k + _PREFIX_OFF[w + 1] - _PREFIX_OFF[w]
        if j < end and (out[j] == 91 or out[j] == 40):  # [ or (
            close = 93 if out[j] == 91 else 41
            j += 1
            d = j
            while j < end and out[j] >= 48 and out[j] <= 57:
                j += 1
            if j == d or j >= end or out[j] != close:
                continue
            j += 1
        if j < end and out[j] == 58:  # ':'
            j += 1
        elif j + 2 < end and out[j] == 0xEF and out[j + 1] == 0xBC and out[j + 2] == 0x9A:
            j += 3  # U+FF1A FULLWIDTH COLON
        else:
            continue
        while j < end and _is_ascii_ws(out[j]):
            j += 1
        return j
    return -1


@njit(cache=True)
def _subjects_kernel(buf, off, out, out_off, sep):  # pragma: no cover - compiled
    n = off.shape[0] - 1
    p = 0
    for i in range(n):
        start = p
        out_off[i] = start
        # 1. collapse ASCII whitespace runs into out, stripped at both ends (branch-free,
        #    as in _whitespace_kernel)
        prev = 1
        for k in range(off[i], off[i + 1]):
            c = buf[k]
            w = np.int64(_WS_CLASS[c] == 1)
            out[p] = 32 if w else c
            p += 1 - (w & prev)
            prev = w
        if prev and p > start:
            p -= 1
        # 2. strip reply/forward prefixes from the collapsed text
        k = start
        while True:
            j = _prefix_end(out, k, p)
            if j < 0:
                break
            k = j
        # 3. move the rest to the start of the slot, ASCII-lowercased
        q = start
        for m in range(k, p):
            out[q] = _lower(out[m])
            q += 1
        p = q
        if sep >= 0:
            out[p] = sep
            p += 1
    out_off[n] = p


@njit(inline="always")
def _collapse_whitespace(buf, k, e, out, p):  # pragma: no cover - compiled
    # Writes normalize_whitespace(buf[k:e]) at out[p:], returns the new end. Branch-free
    # (whitespace in text is too frequent and too random to predict): every unit is
    # written, as a space if it is whitespace, but the output position only advances
    # unless the unit continues a run of whitespace.
    start = p
    prev = 1  # "the previous unit was whitespace": drops leading whitespace
    while k < e:
        c = buf[k]
        w = np.int64(_WS_CLASS[c])
        step = 1
        if w >= 2:
            if w == 2 and k + 1 < e and buf[k + 1] == 0xA0:
                w = 1
                step = 2
            elif w == 3 and k + 2 < e and buf[k + 1] == 0x80 and buf[k + 2] == 0x80:
                w = 1
                step = 3
            else:
                w = 0
        out[p] = 32 if w else c
        p += 1 - (w & prev)
        prev = w
        k += step
    if prev and p > start:
        p -= 1  # the one space a trailing run left behind
    return p


@njit(cache=True)
def _whitespace_kernel(buf, off, out, out_off, sep):  # pragma: no cover - compiled
    n = off.shape[0] - 1
    p = 0
    for i in range(n):
        out_off[i] = p
        p = _collapse_whitespace(buf, off[i], off[i + 1], out, p)
        if sep >= 0:
            out[p] = sep
            p += 1
    out_off[n] = p


#: Batches smaller than this run the plain-Python references instead of the compiled
#: kernels, unless those are loaded already (:func:`warm_up`, as in extract workers). The
#: results are identical (the property tests check every kernel against its reference); a
#: small PST then never waits for numba's first compile (20-70 s on a cold cache), and a
#: large one pays it once per machine (numba caches to disk).
JIT_MIN_BATCH = 256


def _compiled(n: int, kernel: Any) -> bool:
    """Whether a batch of *n* takes *kernel* (and the packing kernel) rather than the
    reference: when large, or when both are loaded (then even one body hashes ~3x faster)."""
    return n >= JIT_MIN_BATCH or bool(kernel.signatures and _byte_offsets.signatures)


def _reference_batch(ref, values: Sequence[str | None]) -> list[str | None]:
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, str):
            raise TypeError(f"expected str or None at index {i}, got {type(v).__name__}")
    return [None if v is None else ref(v) for v in values]


def normalize_addresses(values: Sequence[str | None]) -> list[str | None]:
    """Normalize email addresses in one batch (see the module docstring)."""
    if not _compiled(len(values), _addresses_kernel):
        return _reference_batch(ref_normalize_address, values)
    return _run_text_kernel(_addresses_kernel, values)


def normalize_subjects(values: Sequence[str | None]) -> list[str | None]:
    """Normalize subjects in one batch: reply/forward prefixes off, spaces collapsed."""
    if not _compiled(len(values), _subjects_kernel):
        return _reference_batch(ref_normalize_subject, values)
    return _run_text_kernel(_subjects_kernel, values)


def normalize_whitespace(values: Sequence[str | None]) -> list[str | None]:
    """Collapse and strip whitespace (ASCII, NBSP, U+3000) in one batch, case kept."""
    if not _compiled(len(values), _whitespace_kernel):
        return _reference_batch(ref_normalize_whitespace, values)
    return _run_text_kernel(_whitespace_kernel, values)


# --------------------------------------------------------------------------------------
# XXH3-128 (seed 0, default secret), from the public xxHash specification
# --------------------------------------------------------------------------------------

_SECRET = np.array(
    [
        0xB8, 0xFE, 0x6C, 0x39, 0x23, 0xA4, 0x4B, 0xBE, 0x7C, 0x01, 0x81, 0x2C, 0xF7, 0x21, 0xAD, 0x1C,
        0xDE, 0xD4, 0x6D, 0xE9, 0x83, 0x90, 0x97, 0xDB, 0x72, 0x40, 0xA4, 0xA4, 0xB7, 0xB3, 0x67, 0x1F,
        0xCB, 0x79, 0xE6, 0x4E, 0xCC, 0xC0, 0xE5, 0x78, 0x82, 0x5A, 0xD0, 0x7D, 0xCC, 0xFF, 0x72, 0x21,
        0xB8, 0x08, 0x46, 0x74, 0xF7, 0x43, 0x24, 0x8E, 0xE0, 0x35, 0x90, 0xE6, 0x81, 0x3A, 0x26, 0x4C,
        0x3C, 0x28, 0x52, 0xBB, 0x91, 0xC3, 0x00, 0xCB, 0x88, 0xD0, 0x65, 0x8B, 0x1B, 0x53, 0x2E, 0xA3,
        0x71, 0x64, 0x48, 0x97, 0xA2, 0x0D, 0xF9, 0x4E, 0x38, 0x19, 0xEF, 0x46, 0xA9, 0xDE, 0xAC, 0xD8,
        0xA8, 0xFA, 0x76, 0x3F, 0xE3, 0x9C, 0x34, 0x3F, 0xF9, 0xDC, 0xBB, 0xC7, 0xC7, 0x0B, 0x4F, 0x1D,
        0x8A, 0x51, 0xE0, 0x4B, 0xCD, 0xB4, 0x59, 0x31, 0xC8, 0x9F, 0x7E, 0xC9, 0xD9, 0x78, 0x73, 0x64,
        0xEA, 0xC5, 0xAC, 0x83, 0x34, 0xD3, 0xEB, 0xC3, 0xC5, 0x81, 0xA0, 0xFF, 0xFA, 0x13, 0x63, 0xEB,
        0x17, 0x0D, 0xDD, 0x51, 0xB7, 0xF0, 0xDA, 0x49, 0xD3, 0x16, 0x55, 0x26, 0x29, 0xD4, 0x68, 0x9E,
        0x2B, 0x16, 0xBE, 0x58, 0x7D, 0x47, 0xA1, 0xFC, 0x8F, 0xF8, 0xB8, 0xD1, 0x7A, 0xD0, 0x31, 0xCE,
        0x45, 0xCB, 0x3A, 0x8F, 0x95, 0x16, 0x04, 0x28, 0xAF, 0xD7, 0xFB, 0xCA, 0xBB, 0x4B, 0x40, 0x7E,
    ],
    dtype=np.uint8,
)  # fmt: skip
_SECRET_SIZE = 192
_STRIPES_PER_BLOCK = (_SECRET_SIZE - 64) // 8  # 16
_BLOCK_LEN = 64 * _STRIPES_PER_BLOCK  # 1024
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()

_P32_1 = np.uint64(0x9E3779B1)
_P32_2 = np.uint64(0x85EBCA77)
_P32_3 = np.uint64(0xC2B2AE3D)
_P64_1 = np.uint64(0x9E3779B185EBCA87)
_P64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P64_3 = np.uint64(0x165667B19E3779F9)
_P64_4 = np.uint64(0x85EBCA77C2B2AE63)
_P64_5 = np.uint64(0x27D4EB2F165667C5)
_PMX1 = np.uint64(0x165667919E3779F9)
_PMX2 = np.uint64(0x9FB21C651E98DF25)
_M32 = np.uint64(0xFFFFFFFF)
_U0 = np.uint64(0)

# Every shift count is a uint64: mixing uint64 with Python ints makes numba use float64.
_S3, _S8, _S13, _S16, _S19 = (np.uint64(v) for v in (3, 8, 13, 16, 19))
_S24, _S28, _S29, _S32, _S33 = (np.uint64(v) for v in (24, 28, 29, 32, 33))
_S35, _S37, _S40, _S47, _S48 = (np.uint64(v) for v in (35, 37, 40, 47, 48))
_S54, _S56, _S1, _S2 = (np.uint64(v) for v in (54, 56, 1, 2))


@njit(inline="always")
def _r64(b, p):  # pragma: no cover - compiled
    # little-endian; LLVM folds the byte loads into one unaligned load
    return (
        np.uint64(b[p])
        | (np.uint64(b[p + 1]) << _S8)
        | (np.uint64(b[p + 2]) << _S16)
        | (np.uint64(b[p + 3]) << _S24)
        | (np.uint64(b[p + 4]) << _S32)
        | (np.uint64(b[p + 5]) << _S40)
        | (np.uint64(b[p + 6]) << _S48)
        | (np.uint64(b[p + 7]) << _S56)
    )


@njit(inline="always")
def _r32(b, p):  # pragma: no cover - compiled
    return (
        np.uint64(b[p])
        | (np.uint64(b[p + 1]) << _S8)
        | (np.uint64(b[p + 2]) << _S16)
        | (np.uint64(b[p + 3]) << _S24)
    )


@njit(inline="always")
def _mul128(a, b):  # pragma: no cover - compiled
    """Full 64x64 -> 128-bit product as (low64, high64), from 32-bit halves."""
    a_lo = a & _M32
    a_hi = a >> _S32
    b_lo = b & _M32
    b_hi = b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    cross = (lo_lo >> _S32) + (hi_lo & _M32) + lo_hi
    high = (hi_lo >> _S32) + (cross >> _S32) + hi_hi
    low = (cross << _S32) | (lo_lo & _M32)
    return low, high


@njit(inline="always")
def _mul128_fold64(a, b):  # pragma: no cover - compiled
    lo, hi = _mul128(a, b)
    return lo ^ hi


@njit(inline="always")
def _bswap32(x):  # pragma: no cover - compiled
    return (
        ((x & np.uint64(0xFF)) << _S24)
        | ((x & np.uint64(0xFF00)) << _S8)
        | ((x >> _S8) & np.uint64(0xFF00))
        | ((x >> _S24) & np.uint64(0xFF))
    )


@njit(inline="always")
def _bswap64(x):  # pragma: no cover - compiled
    return (_bswap32(x & _M32) << _S32) | _bswap32(x >> _S32)


@njit(inline="always")
def _rotl32_13(x):  # pragma: no cover - compiled
    return ((x << _S13) | (x >> _S19)) & _M32


@njit(inline="always")
def _avalanche(h):  # pragma: no cover - compiled
    h = h ^ (h >> _S37)
    h = h * _PMX1
    return h ^ (h >> _S32)


@njit(inline="always")
def _avalanche_xxh64(h):  # pragma: no cover - compiled
    h = h ^ (h >> _S33)
    h = h * _P64_2
    h = h ^ (h >> _S29)
    h = h * _P64_3
    return h ^ (h >> _S32)


@njit(inline="always")
def _mix16(b, p, sp):  # pragma: no cover - compiled
    return _mul128_fold64(_r64(b, p) ^ _r64(_SECRET, sp), _r64(b, p + 8) ^ _r64(_SECRET, sp + 8))


@njit(inline="always")
def _mix32(lo, hi, b, p1, p2, sp):  # pragma: no cover - compiled
    lo = lo + _mix16(b, p1, sp)
    lo = lo ^ (_r64(b, p2) + _r64(b, p2 + 8))
    hi = hi + _mix16(b, p2, sp + 16)
    hi = hi ^ (_r64(b, p1) + _r64(b, p1 + 8))
    return lo, hi


@njit(inline="always")
def _xxh3_0to16(b, p, n):  # pragma: no cover - compiled
    ln = np.uint64(n)
    if n > 8:
        bitflipl = _r64(_SECRET, 32) ^ _r64(_SECRET, 40)
        bitfliph = _r64(_SECRET, 48) ^ _r64(_SECRET, 56)
        in_lo = _r64(b, p)
        in_hi = _r64(b, p + n - 8)
        m_lo, m_hi = _mul128(in_lo ^ in_hi ^ bitflipl, _P64_1)
        m_lo = m_lo + ((ln - np.uint64(1)) << _S54)
        in_hi = in_hi ^ bitfliph
        m_hi = m_hi + in_hi + (in_hi & _M32) * (_P32_2 - np.uint64(1))
        m_lo = m_lo ^ _bswap64(m_hi)
        h_lo, h_hi = _mul128(m_lo, _P64_2)
        h_hi = h_hi + m_hi * _P64_2
        return _avalanche(h_lo), _avalanche(h_hi)
    if n >= 4:
        combined = _r32(b, p) | (_r32(b, p + n - 4) << _S32)
        keyed = combined ^ (_r64(_SECRET, 16) ^ _r64(_SECRET, 24))
        m_lo, m_hi = _mul128(keyed, _P64_1 + (ln << _S2))
        m_hi = m_hi + (m_lo << _S1)
        m_lo = m_lo ^ (m_hi >> _S3)
        m_lo = m_lo ^ (m_lo >> _S35)
        m_lo = m_lo * _PMX2
        m_lo = m_lo ^ (m_lo >> _S28)
        return m_lo, _avalanche(m_hi)
    if n > 0:
        c1 = np.uint64(b[p])
        c2 = np.uint64(b[p + (n >> 1)])
        c3 = np.uint64(b[p + n - 1])
        combined = (c1 << _S16) | (c2 << _S24) | c3 | (ln << _S8)
        combinedh = _rotl32_13(_bswap32(combined))
        keyed_lo = combined ^ (_r32(_SECRET, 0) ^ _r32(_SECRET, 4))
        keyed_hi = combinedh ^ (_r32(_SECRET, 8) ^ _r32(_SECRET, 12))
        return _avalanche_xxh64(keyed_lo), _avalanche_xxh64(keyed_hi)
    lo = _avalanche_xxh64(_r64(_SECRET, 64) ^ _r64(_SECRET, 72))
    hi = _avalanche_xxh64(_r64(_SECRET, 80) ^ _r64(_SECRET, 88))
    return lo, hi


@njit(inline="always")
def _xxh3_17to240(b, p, n):  # pragma: no cover - compiled
    ln = np.uint64(n)
    lo = ln * _P64_1
    hi = _U0
    if n <= 128:
        i = ((n - 1) >> 5) + 1 - 1
        while i >= 0:
            lo, hi = _mix32(lo, hi, b, p + 16 * i, p + n - 16 * i - 16, 32 * i)
            i -= 1
    else:
        for i in range(4):
            lo, hi = _mix32(lo, hi, b, p + 32 * i, p + 32 * i + 16, 32 * i)
        lo = _avalanche(lo)
        hi = _avalanche(hi)
        for i in range(4, n >> 5):
            lo, hi = _mix32(lo, hi, b, p + 32 * i, p + 32 * i + 16, 3 + 32 * (i - 4))
        # last 32 bytes, halves swapped; with seed 0 the negated seed is still 0
        lo, hi = _mix32(lo, hi, b, p + n - 16, p + n - 32, 103)
    h_lo = lo + hi
    h_hi = lo * _P64_1 + hi * _P64_4 + ln * _P64_2
    return _avalanche(h_lo), _U0 - _avalanche(h_hi)


@njit(inline="always")
def _accumulate(a0, a1, a2, a3, a4, a5, a6, a7, b, p, sp):  # pragma: no cover - compiled
    # one 64-byte stripe; the eight accumulators live in registers, not in an array
    d0 = _r64(b, p)
    d1 = _r64(b, p + 8)
    d2 = _r64(b, p + 16)
    d3 = _r64(b, p + 24)
    d4 = _r64(b, p + 32)
    d5 = _r64(b, p + 40)
    d6 = _r64(b, p + 48)
    d7 = _r64(b, p + 56)
    k0 = d0 ^ _r64(_SECRET, sp)
    k1 = d1 ^ _r64(_SECRET, sp + 8)
    k2 = d2 ^ _r64(_SECRET, sp + 16)
    k3 = d3 ^ _r64(_SECRET, sp + 24)
    k4 = d4 ^ _r64(_SECRET, sp + 32)
    k5 = d5 ^ _r64(_SECRET, sp + 40)
    k6 = d6 ^ _r64(_SECRET, sp + 48)
    k7 = d7 ^ _r64(_SECRET, sp + 56)
    # lane i gains lo32(key_i) * hi32(key_i) and the data of its neighbour lane i^1
    a0 = a0 + d1 + (k0 & _M32) * (k0 >> _S32)
    a1 = a1 + d0 + (k1 & _M32) * (k1 >> _S32)
    a2 = a2 + d3 + (k2 & _M32) * (k2 >> _S32)
    a3 = a3 + d2 + (k3 & _M32) * (k3 >> _S32)
    a4 = a4 + d5 + (k4 & _M32) * (k4 >> _S32)
    a5 = a5 + d4 + (k5 & _M32) * (k5 >> _S32)
    a6 = a6 + d7 + (k6 & _M32) * (k6 >> _S32)
    a7 = a7 + d6 + (k7 & _M32) * (k7 >> _S32)
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(inline="always")
def _scramble(a, lane):  # pragma: no cover - compiled
    a = a ^ (a >> _S47)
    a = a ^ _r64(_SECRET, _SECRET_SIZE - 64 + 8 * lane)
    return a * _P32_1


@njit(inline="always")
def _merge_accs(a0, a1, a2, a3, a4, a5, a6, a7, sp, start):  # pragma: no cover - compiled
    r = start
    r = r + _mul128_fold64(a0 ^ _r64(_SECRET, sp), a1 ^ _r64(_SECRET, sp + 8))
    r = r + _mul128_fold64(a2 ^ _r64(_SECRET, sp + 16), a3 ^ _r64(_SECRET, sp + 24))
    r = r + _mul128_fold64(a4 ^ _r64(_SECRET, sp + 32), a5 ^ _r64(_SECRET, sp + 40))
    r = r + _mul128_fold64(a6 ^ _r64(_SECRET, sp + 48), a7 ^ _r64(_SECRET, sp + 56))
    return _avalanche(r)


@njit(inline="always")
def _xxh3_long(b, p, n):  # pragma: no cover - compiled
    a0, a1, a2, a3 = _P32_3, _P64_1, _P64_2, _P64_3
    a4, a5, a6, a7 = _P64_4, _P32_2, _P64_5, _P32_1
    nb_blocks = (n - 1) // _BLOCK_LEN
    for blk in range(nb_blocks):
        base = p + blk * _BLOCK_LEN
        for s in range(_STRIPES_PER_BLOCK):
            a0, a1, a2, a3, a4, a5, a6, a7 = _accumulate(
                a0, a1, a2, a3, a4, a5, a6, a7, b, base + 64 * s, 8 * s
            )
        a0 = _scramble(a0, 0)
        a1 = _scramble(a1, 1)
        a2 = _scramble(a2, 2)
        a3 = _scramble(a3, 3)
        a4 = _scramble(a4, 4)
        a5 = _scramble(a5, 5)
        a6 = _scramble(a6, 6)
        a7 = _scramble(a7, 7)
    # the last (partial or full) block: its stripes but the last, then the last 64 bytes
    base = p + nb_blocks * _BLOCK_LEN
    nb_stripes = ((n - 1) - _BLOCK_LEN * nb_blocks) // 64
    for s in range(nb_stripes):
        a0, a1, a2, a3, a4, a5, a6, a7 = _accumulate(
            a0, a1, a2, a3, a4, a5, a6, a7, b, base + 64 * s, 8 * s
        )
    a0, a1, a2, a3, a4, a5, a6, a7 = _accumulate(
        a0, a1, a2, a3, a4, a5, a6, a7, b, p + n - 64, _SECRET_SIZE - 64 - 7
    )
    ln = np.uint64(n)
    lo = _merge_accs(a0, a1, a2, a3, a4, a5, a6, a7, 11, ln * _P64_1)
    hi = _merge_accs(a0, a1, a2, a3, a4, a5, a6, a7, _SECRET_SIZE - 64 - 11, ~(ln * _P64_2))
    return lo, hi


@njit(inline="always")
def _write_hex64(out, q, v):  # pragma: no cover - compiled
    for k in range(16):
        out[q + k] = _HEX[np.intp((v >> np.uint64(60 - 4 * k)) & np.uint64(15))]


@njit(inline="always")
def _xxh3_128(buf, p, ln):  # pragma: no cover - compiled
    if ln <= 16:
        return _xxh3_0to16(buf, p, ln)
    if ln <= 240:
        return _xxh3_17to240(buf, p, ln)
    return _xxh3_long(buf, p, ln)


@njit(cache=True)
def _xxh3_128_kernel(buf, off, out):  # pragma: no cover - compiled
    # out: 33 bytes per value, 32 hex digits (high 64 bits first) and "\n"
    n = off.shape[0] - 1
    for i in range(n):
        lo, hi = _xxh3_128(buf, off[i], off[i + 1] - off[i])
        _write_hex64(out, 33 * i, hi)
        _write_hex64(out, 33 * i + 16, lo)
        out[33 * i + 32] = 10


def _decode_digests(out: np.ndarray) -> list[str]:
    digests = out.tobytes().decode("ascii").split("\n")
    digests.pop()  # after the last newline
    return digests


def xxh3_128_hexdigests(values: Sequence[bytes]) -> list[str]:
    """XXH3-128 of each value as 32 hex digits, equal to ``xxhash.xxh3_128_hexdigest``."""
    n = len(values)
    if n == 0:
        return []
    buf, off = pack(values)
    out = np.empty(33 * n, dtype=np.uint8)
    _xxh3_128_kernel(buf, off, out)
    return _decode_digests(out)


@njit(cache=True)
def _content_hash_kernel(hbuf, hoff, bbuf, boff, out):  # pragma: no cover - compiled
    n = hoff.shape[0] - 1
    longest = 0
    for i in range(n):
        longest = max(longest, hoff[i + 1] - hoff[i] + boff[i + 1] - boff[i])
    # one small scratch buffer, reused: the canonical text never leaves the cache
    scratch = np.empty(longest, dtype=np.uint8)
    for i in range(n):
        p = 0
        for k in range(hoff[i], hoff[i + 1]):
            scratch[p] = hbuf[k]
            p += 1
        p = _collapse_whitespace(bbuf, boff[i], boff[i + 1], scratch, p)
        lo, hi = _xxh3_128(scratch, 0, p)
        _write_hex64(out, 33 * i, hi)
        _write_hex64(out, 33 * i + 16, lo)
        out[33 * i + 32] = 10


def content_hashes(heads: Sequence[str], bodies: Sequence[str | None]) -> list[str]:
    """XXH3-128 hex digest of ``head + normalize_whitespace(body)`` for each pair.

    Equal to ``xxhash.xxh3_128_hexdigest((head + ref_normalize_whitespace(body or
    "")).encode())``, but the normalized body is never built as a Python string: it is
    normalized and hashed in one pass over the packed bodies. A ``None`` body hashes as an
    empty one. ``heads`` carries the rest of the canonical form (built by the caller).
    """
    n = len(heads)
    if len(bodies) != n:
        raise ValueError(f"{n} heads but {len(bodies)} bodies")
    if n == 0:
        return []
    if any(h is None for h in heads):
        raise TypeError("heads must be str, not None")
    if not _compiled(n, _content_hash_kernel):
        import xxhash

        return [
            xxhash.xxh3_128_hexdigest((h + ref_normalize_whitespace(b or "")).encode("utf-8", "surrogatepass"))
            for h, b in zip(heads, bodies)
        ]
    return _content_hashes_jit(heads, bodies)


def _content_hashes_jit(heads: Sequence[str], bodies: Sequence[str | None]) -> list[str]:
    n = len(heads)
    hbuf, hoff, _, _, _ = _pack_text(heads)
    bbuf, boff, _, _, _ = _pack_text(bodies)
    out = np.empty(33 * n, dtype=np.uint8)
    _content_hash_kernel(hbuf, hoff, bbuf, boff, out)
    return _decode_digests(out)


# --------------------------------------------------------------------------------------
# Compressed RTF (MS-OXRTFCP LZFu): PR_RTF_COMPRESSED, decompressed once per message that has one
# --------------------------------------------------------------------------------------

# the dictionary's first 207 bytes (MS-OXRTFCP 2.1.3.1.1); the rest starts as spaces, as the
# reference (the compressed-rtf package) has it
_LZFU_DICT = np.frombuffer(
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern "
    b"\\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0"
    b"\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx".ljust(4096, b" "), dtype=np.uint8)
_LZFU_START = 207
#: an LZFu stream cannot grow more than this (a 2-byte reference yields at most 17 bytes, and
#: every 8 tokens cost a control byte): a larger declared size is a damaged header
LZFU_MAX_RATIO = 9


@njit(cache=True)
def _lzfu_kernel(src, dictionary, out):  # pragma: no cover - compiled
    """Decompress the LZFu tokens in *src* into *out*; the byte count, -1 when *out* is too
    small, -2 when the data ends inside a reference (as the reference decoder, an error)."""
    dic = dictionary.copy()
    wp = 207
    n = 0
    p = 0
    end = src.shape[0]
    cap = out.shape[0]
    while p < end:
        control = src[p]
        p += 1
        for bit in range(8):
            if p >= end:
                return n
            if (control >> bit) & 1 == 0:
                c = src[p]
                p += 1
                if n >= cap:
                    return -1
                out[n] = c
                n += 1
                dic[wp] = c
                wp = (wp + 1) & 0xFFF
            else:
                if p + 1 >= end:
                    return -2
                token = (np.int64(src[p]) << 8) | np.int64(src[p + 1])
                p += 2
                offset = token >> 4
                if offset == wp:
                    return n  # the end marker
                for k in range((token & 0xF) + 2):
                    c = dic[(offset + k) & 0xFFF]
                    if n >= cap:
                        return -1
                    out[n] = c
                    n += 1
                    dic[wp] = c
                    wp = (wp + 1) & 0xFFF
    return n


def lzfu_decompress(tokens: bytes) -> bytes | None:
    """The RTF that LZFu *tokens* (a PR_RTF_COMPRESSED value after its 16-byte header, CRC
    already checked) expand to, exactly as the reference (the compressed-rtf package) gives
    it; None when the kernel is not compiled in this process (the caller then uses the
    reference). The output is bounded by what the tokens can encode, never by the header.

    Raises:
        ValueError: the data ends inside a reference.
    """
    if not _lzfu_kernel.signatures:
        return None
    out = np.empty(LZFU_MAX_RATIO * len(tokens) + 64, dtype=np.uint8)
    n = _lzfu_kernel(np.frombuffer(tokens, dtype=np.uint8), _LZFU_DICT, out)
    if n < 0:
        raise ValueError("compressed RTF ends inside a reference" if n == -2 else "compressed RTF expands too far")
    return bytes(out[:n])


# --------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------


def cache_ready() -> bool:
    """True when every compiled kernel is in numba's on-disk cache, fresh (this numba, this
    source), so that :func:`warm_up` only loads them (~0.4 s here) and never compiles (20-70 s)."""
    from ..jit import in_cache

    return in_cache((_byte_offsets, _addresses_kernel, _subjects_kernel, _whitespace_kernel, _xxh3_128_kernel,
                     _content_hash_kernel, _lzfu_kernel))


def warm_up() -> float:
    """Compile every kernel (or load it from numba's on-disk cache); return seconds spent.

    Goes through the same entry points real batches use, so the compiled signatures are
    exactly theirs.
    """
    t0 = time.perf_counter()
    sample = [" <MAILTO:A@B.example> ", None, "RE: Hi\u3000there\x00"]
    # the compiled paths directly: small batches would take the references
    _run_text_kernel(_addresses_kernel, sample)
    _run_text_kernel(_subjects_kernel, sample)
    _run_text_kernel(_whitespace_kernel, sample)
    xxh3_128_hexdigests([b"", b"x" * 300])
    _content_hashes_jit(["a\n", "\u00e9\n"], ["b\u3000 c", None])
    _lzfu_kernel(np.zeros(2, dtype=np.uint8), _LZFU_DICT, np.empty(8, dtype=np.uint8))
    return time.perf_counter() - t0
