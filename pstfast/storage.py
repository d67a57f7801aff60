"""One small file API over local paths and ``s3://`` URLs (via fsspec / s3fs).

Every stage reads and writes through these functions, so a local folder and an S3 prefix
behave the same. S3 endpoints come from the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` environment variables (read when a filesystem is first needed).

Errors: a missing input is an :class:`~pstfast.errors.InputError` (retrying cannot make
it appear), a path we may not write is a :class:`~pstfast.errors.UsageError`, any other
I/O failure is a :class:`~pstfast.errors.StorageError` (transient: retry).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import InputError, StorageError, UsageError

_CHUNK = 1 << 20


def is_s3(url: str | os.PathLike[str]) -> bool:
    """True for ``s3://`` URLs."""
    return str(url).startswith("s3://")


def join(root: str | os.PathLike[str], *parts: str) -> str:
    """*root* and *parts* joined with ``/`` (no doubled separators)."""
    text = str(root)
    for part in parts:
        text = text.rstrip("/") + "/" + part.lstrip("/")
    return text


def output_prefix(root: str | os.PathLike[str], pst_file_id: str) -> str:
    """The output folder of one PST: ``<root>/pst-v2/<pst_file_id>/``.

    Every path or key derived from a pst_file_id is made here, so this is where the id is
    checked (:func:`pstfast.ids.check_identifier`): no id can point outside *root*.

    Raises:
        UsageError: *pst_file_id* is not a valid identifier.
    """
    from .ids import check_identifier

    return join(root, "pst-v2", check_identifier(pst_file_id, "pst_file_id")) + "/"


def _s3() -> Any:
    from .extras import require

    s3fs = require("s3fs", "reading and writing s3:// URLs")  # heavy: only when an s3:// URL is used

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
    return s3fs.S3FileSystem(client_kwargs=client_kwargs)


#: what botocore says when no credentials are configured: a setup problem, not a transient one
NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "NoRegionError")
CREDENTIALS_HINT = ("configure AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                    "or an instance/job role) and AWS_REGION")


def _translate(exc: BaseException, url: str, writing: bool) -> Exception:
    if type(exc).__name__ in NO_CREDENTIALS or "Unable to locate credentials" in str(exc):
        return UsageError(f"{url}: no usable AWS credentials ({exc}): {CREDENTIALS_HINT}")
    if isinstance(exc, FileNotFoundError):
        if writing:  # a missing bucket or parent folder: the caller must fix the path
            return UsageError(f"{url}: cannot write: no such bucket or folder")
        return InputError(f"{url}: no such file or object")
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)) or (
        isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    ):
        action = "cannot write" if writing else "cannot read"
        return UsageError(f"{url}: {action}: {exc.strerror or exc}")
    return StorageError(f"{url}: {'write' if writing else 'read'} failed: {exc}")


@contextmanager
def open_file(url: str | os.PathLike[str], mode: str = "rb") -> Iterator[IO[Any]]:
    """Open a local path or S3 object; writing creates parent folders."""
    url = str(url)
    writing = any(flag in mode for flag in "wax")
    try:
        if is_s3(url):
            handle = _s3().open(url, mode)
        else:
            if writing:
                Path(url).parent.mkdir(parents=True, exist_ok=True)
            handle = open(url, mode)
    except OSError as exc:
        raise _translate(exc, url, writing) from exc
    try:
        with handle:
            yield handle
    except OSError as exc:
        raise _translate(exc, url, writing) from exc


def read_bytes(url: str | os.PathLike[str]) -> bytes:
    """The whole content of *url*."""
    with open_file(url, "rb") as handle:
        data: bytes = handle.read()
    return data


def write_bytes(url: str | os.PathLike[str], data: bytes) -> None:
    """Replace *url* with *data*, atomically: a reader sees the old content or the new,
    never a torn file (a local file is written beside it, flushed, then renamed over it;
    an S3 PUT is atomic already). Manifests are written this way, so a full disk or a
    crash mid-write leaves the previous manifest, not a broken one.

    Raises:
        UsageError: the folder cannot be written. StorageError: the write failed (disk full).
    """
    url = str(url)
    if is_s3(url):
        with open_file(url, "wb") as handle:
            handle.write(data)
        return
    target = Path(url)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open_file(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise _translate(exc, url, True) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def exists(url: str | os.PathLike[str]) -> bool:
    """True when *url* names an existing file or object."""
    url = str(url)
    try:
        return bool(_s3().exists(url)) if is_s3(url) else os.path.exists(url)
    except OSError as exc:
        raise _translate(exc, url, False) from exc


def remove(url: str | os.PathLike[str]) -> None:
    """Delete *url* if it exists."""
    url = str(url)
    try:
        if is_s3(url):
            fs = _s3()
            if fs.exists(url):
                fs.rm(url)
        elif os.path.exists(url):
            os.remove(url)
    except OSError as exc:
        raise _translate(exc, url, True) from exc


def size(url: str | os.PathLike[str]) -> int:
    """The size of *url* in bytes."""
    url = str(url)
    try:
        return int(_s3().size(url)) if is_s3(url) else os.path.getsize(url)
    except OSError as exc:
        raise _translate(exc, url, False) from exc


def download(url: str | os.PathLike[str], local_path: str | os.PathLike[str]) -> Path:
    """Copy *url* to *local_path* (a plain copy when *url* is local)."""
    url, local = str(url), Path(local_path)
    local.parent.mkdir(parents=True, exist_ok=True)
    with open_file(url, "rb") as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    return local


def upload(local_path: str | os.PathLike[str], url: str | os.PathLike[str]) -> None:
    """Copy the local file *local_path* to *url* (local or S3)."""
    with open(local_path, "rb") as src, open_file(url, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


#: attempts per object in :func:`upload_many` (a failed PUT is retried with backoff)
UPLOAD_ATTEMPTS = 4


def upload_many(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    concurrency: int = 16,
    attempts: int = UPLOAD_ATTEMPTS,
    backoff: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    upload_one: Callable[[str | os.PathLike[str], str | os.PathLike[str]], None] | None = None,
) -> int:
    """Copy each local file to its URL, *concurrency* at a time; returns the retries made.

    Each copy is :func:`upload` (one PUT per S3 object below s3fs's block size). A copy
    that fails with a :class:`StorageError` (transient) is retried up to *attempts* times
    in all, waiting ``backoff * 2**n`` seconds with full jitter; any other error, or the last
    attempt's, cancels the copies not started and is raised once the running ones end.
    Callers that write an index of these objects (``manifest.json``) write it after this
    returns, so a reader never sees an index naming objects not yet there.

    Raises:
        StorageError: an object still failed after *attempts* tries.
        UsageError: a destination cannot be written (no bucket, no credentials).
    """
    if concurrency < 1 or attempts < 1:
        raise ValueError("concurrency and attempts must be 1 or more")
    one = upload_one or upload
    retries = 0
    lock = threading.Lock()
    rng = random.Random()

    def copy(local: str | os.PathLike[str], url: str | os.PathLike[str]) -> None:
        nonlocal retries
        for attempt in range(attempts):
            try:
                one(local, url)
                return
            except StorageError:
                if attempt + 1 == attempts:
                    raise
                with lock:
                    retries += 1
                    wait = rng.uniform(0, backoff * 2**attempt)
                sleep(wait)

    if concurrency == 1 or len(pairs) <= 1:
        for local, url in pairs:
            copy(local, url)
        return retries
    with ThreadPoolExecutor(max_workers=min(concurrency, len(pairs)), thread_name_prefix="pstfast-upload") as pool:
        futures = [pool.submit(copy, local, url) for local, url in pairs]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return retries


def sha256_and_size(url: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 hex digest and byte size of *url*, streamed."""
    digest = hashlib.sha256()
    total = 0
    with open_file(url, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def check_writable(url: str | os.PathLike[str]) -> None:
    """Fail early with a :class:`UsageError` when a local output root cannot be written."""
    url = str(url)
    if is_s3(url):
        return
    path = Path(url)
    probe_dir = path
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UsageError(f"{url}: output folder is not writable")
