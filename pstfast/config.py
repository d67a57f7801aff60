"""Configuration: explicit arguments first, then ``PSTFAST_*`` environment variables.

Nothing here is read at import time; call the functions when a value is needed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def env(name: str, default: str | None = None) -> str | None:
    """The value of ``PSTFAST_<NAME>``, or *default* when unset or empty."""
    value = os.environ.get(f"PSTFAST_{name.upper()}")
    return value if value else default


def home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Per-user state folder (embedded PostgreSQL data, demo outputs, caches)."""
    if explicit:
        return Path(explicit)
    value = env("HOME")
    if value:
        return Path(value)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pstfast"


def scratch(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Fast local scratch for part files and S3 downloads (the NVMe mount on Batch)."""
    if explicit:
        return Path(explicit)
    value = env("SCRATCH")
    return Path(value) if value else Path(tempfile.gettempdir())


def database_url(explicit: str | None = None) -> str | None:
    """The DSN to use, or None to mean "the embedded PostgreSQL"."""
    return explicit or env("DATABASE_URL")


def workers(explicit: int | None = None) -> int:
    """Extractor process count: argument, ``PSTFAST_WORKERS``, else the CPU count."""
    if explicit:
        return explicit
    value = env("WORKERS")
    if value:
        if not value.isdigit() or int(value) < 1:
            from .errors import UsageError

            raise UsageError(f"PSTFAST_WORKERS={value!r}: give a whole number, 1 or more")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def upload_concurrency(explicit: int | None = None) -> int:
    """Parallel S3 PUTs of an extract's outputs: argument, ``PSTFAST_UPLOAD_CONCURRENCY``, else 16."""
    if explicit:
        return explicit
    value = env("UPLOAD_CONCURRENCY")
    if value:
        if not value.isdigit() or int(value) < 1:
            from .errors import UsageError

            raise UsageError(f"PSTFAST_UPLOAD_CONCURRENCY={value!r}: give a whole number, 1 or more")
        return int(value)
    return 16


def _positive(name: str, default: float) -> float:
    value = env(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        from .errors import UsageError

        raise UsageError(f"PSTFAST_{name}={value!r}: give a number above 0")
    return number


#: the smallest PSTFAST_ITEM_MAX_MB: the compiled reader holds up to this much of one message
#: itself (pstfast.pst.compiled._Workspace), so a lower budget would depend on the read path
MIN_ITEM_MAX_MB = 64


def item_budget() -> tuple[float, int]:
    """(seconds, bytes) one item may take to read: ``PSTFAST_ITEM_SECONDS`` (default 300) and
    ``PSTFAST_ITEM_MAX_MB`` (default 1024, at least 64: the largest value read into memory;
    attachments stream and do not count). An item over either is an error row."""
    max_mb = _positive("ITEM_MAX_MB", 1024.0)
    if max_mb < MIN_ITEM_MAX_MB:
        from .errors import UsageError

        raise UsageError(f"PSTFAST_ITEM_MAX_MB={max_mb:g}: give {MIN_ITEM_MAX_MB} or more")
    return _positive("ITEM_SECONDS", 300.0), int(max_mb * (1 << 20))


READERS = ("pstfast", "libpff")


def reader(explicit: str | None = None) -> str:
    """What reads the items: argument, ``PSTFAST_READER``, else ``pstfast`` (its own reader;
    ``libpff`` reads every item with pypff instead, for a second opinion)."""
    from .errors import UsageError

    value = explicit or env("READER") or "pstfast"
    if value not in READERS:
        raise UsageError(f"reader {value!r}: choose {' or '.join(READERS)}")
    return value


def codepage(explicit: int | str | None = None) -> int | None:
    """The code page of ANSI strings that name none of their own: argument, ``PSTFAST_CODEPAGE``,
    else None (the extract decides from the file).

    Raises:
        UsageError: not a Windows code page Python can decode.
    """
    from .errors import UsageError

    value: int | str | None = explicit if explicit is not None else env("CODEPAGE")
    if value is None:
        return None
    text = str(value).lower().removeprefix("cp")
    if not text.isdigit():
        raise UsageError(f"code page {value!r}: give a Windows code page number, e.g. 1252, 932 or 1251")
    import codecs

    try:
        codecs.lookup(f"cp{int(text)}")
    except LookupError:
        raise UsageError(f"code page {value!r}: not a code page Python can decode") from None
    return int(text)


TOAST_COMPRESSIONS = ("auto", "lz4", "pglz")


def toast_compression(explicit: str | None = None) -> str:
    """How the load compresses long text (bodies) in PostgreSQL: argument, else
    ``PSTFAST_TOAST_COMPRESSION``, else ``auto`` (lz4 when the server offers it, as Aurora
    and RDS 14+ and most packaged servers do; otherwise the server's default)."""
    from .errors import UsageError

    value = explicit or env("TOAST_COMPRESSION") or "auto"
    if value not in TOAST_COMPRESSIONS:
        raise UsageError(f"PSTFAST_TOAST_COMPRESSION={value!r}: choose {', '.join(TOAST_COMPRESSIONS)}")
    return value


def compiled_reader_setting(explicit: bool | None = None) -> bool | None:
    """Whether pstfast's reader reads messages with its compiled path: argument, else
    ``PSTFAST_COMPILED_READER`` (``1`` yes, compiling it first if need be; ``0`` no), else
    None for ``auto``: yes when numba's on-disk cache holds it (``pstfast warm-up``), which
    the process that reads decides (:func:`resolve_compiled_reader`); asking needs numba."""
    from .errors import UsageError

    if explicit is not None:
        return explicit
    value = env("COMPILED_READER", "auto")
    if value not in ("0", "1", "auto"):
        raise UsageError(f"PSTFAST_COMPILED_READER={value!r}: choose 1, 0 or auto")
    return None if value == "auto" else value == "1"


def resolve_compiled_reader(setting: bool | None) -> bool:
    """A :func:`compiled_reader_setting` decided here (None: whether numba's cache holds the
    compiled reader), without reading the environment again: a fork server's may be older."""
    if setting is not None:
        return setting
    from .pst.compiled import cache_ready

    return cache_ready()
