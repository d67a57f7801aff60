"""Extract from and to S3, against moto's standalone server on 127.0.0.1 (a real HTTP API)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import pstfast
from pstfast import storage
from pstfast.errors import InputError
from pstfast.manifest import read_manifest, verify

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "public"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"public corpus not found at {CORPUS}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server; AWS_* env points boto/s3fs at it for the module's tests."""
    port = _free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # wait until the server answers HTTP (or died / timed out)
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto_server did not start")
            try:
                proc.wait(timeout=0.1)  # returns early only if the server exits
            except subprocess.TimeoutExpired:
                pass
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def buckets(s3_endpoint: str) -> tuple[str, str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for name in ("docs", "pipeline"):
        try:
            s3.create_bucket(Bucket=name)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    return "docs", "pipeline"


@needs_corpus
def test_extract_s3_to_s3(buckets: tuple[str, str], tmp_path: Path) -> None:
    docs, pipeline = buckets
    source = f"s3://{docs}/project_p1/pst/sub1/pstsdk-submessage.pst"
    storage.upload(CORPUS / "pstsdk-submessage.pst", source)
    manifest = pstfast.extract(source, f"s3://{pipeline}", pst_file_id="sub1", project_id="p1", workers=1,
                               scratch=tmp_path)
    prefix = storage.output_prefix(f"s3://{pipeline}", "sub1")
    assert prefix == f"s3://{pipeline}/pst-v2/sub1/"
    again = read_manifest(prefix)
    assert again == manifest and manifest.source == source
    verify(prefix, again)
    rows = [json.loads(line) for line in gzip.decompress(storage.read_bytes(prefix + "emails.ndjson.gz")).splitlines()]
    assert [r["project_id"] for r in rows] == ["p1", "p1"]
    # same bytes as a local extract of the same file
    local = pstfast.extract(CORPUS / "pstsdk-submessage.pst", tmp_path / "local", pst_file_id="sub1",
                            project_id="p1", workers=1)
    assert {k: v for k, v in local.objects.items()} == manifest.objects
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pstfast-extract-")]  # scratch cleaned


def test_missing_s3_object(buckets: tuple[str, str], tmp_path: Path) -> None:
    docs, pipeline = buckets
    with pytest.raises(InputError, match="no such file or object"):
        pstfast.extract(f"s3://{docs}/project_p1/pst/none/missing.pst", f"s3://{pipeline}", workers=1,
                        scratch=tmp_path)
    result = subprocess.run(["pstfast", "extract", f"s3://{docs}/nope.pst", "--out", f"s3://{pipeline}"],
                            capture_output=True, text=True)
    assert result.returncode == 65 and len(result.stderr.strip().splitlines()) == 1


def test_upload_many_is_parallel_byte_identical_and_retries(buckets: tuple[str, str], tmp_path: Path) -> None:
    """storage.upload_many (an extract's outputs to S3): every object arrives with its bytes;
    a PUT that fails transiently is retried with backoff; a bad destination is not."""
    import threading

    from pstfast.errors import StorageError, UsageError

    _, pipeline = buckets
    files = []
    for n in range(120):
        path = tmp_path / f"f{n:03d}"
        path.write_bytes(os.urandom(n * 37 + 1))
        files.append(path)
    pairs = [(p, f"s3://{pipeline}/pst-v2/many/attachments/{p.name}") for p in files]
    failed_once: set[str] = set()
    running, peak = 0, 0
    lock = threading.Lock()
    waits: list[float] = []

    def flaky(local: str | os.PathLike[str], url: str | os.PathLike[str]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            name = Path(local).name
            if int(name[1:]) % 10 == 0 and name not in failed_once:  # every 10th object: one failed PUT
                failed_once.add(name)
                raise StorageError(f"{url}: write failed: injected")
            storage.upload(local, url)
        finally:
            with lock:
                running -= 1

    retries = storage.upload_many(pairs, concurrency=8, upload_one=flaky, sleep=waits.append)
    assert retries == 12 and len(waits) == 12
    assert all(0 <= w <= 0.25 for w in waits)  # first retry: full jitter below backoff * 2**0
    assert 1 < peak <= 8  # bounded concurrency, and really concurrent
    for local, url in pairs:
        assert storage.read_bytes(url) == local.read_bytes()

    always = storage.upload_many  # an object that never succeeds: StorageError after 4 attempts
    calls: list[str] = []

    def broken(local: str | os.PathLike[str], url: str | os.PathLike[str]) -> None:
        calls.append(str(url))
        raise StorageError(f"{url}: write failed: injected")

    with pytest.raises(StorageError):
        always(pairs[:1], upload_one=broken, sleep=lambda s: None)
    assert len(calls) == storage.UPLOAD_ATTEMPTS
    with pytest.raises(UsageError):  # no such bucket: a usage error, raised at once (no retries)
        storage.upload_many([(files[0], "s3://no-such-bucket-pstfast/x"), (files[1], "s3://no-such-bucket-pstfast/y")],
                            sleep=lambda s: pytest.fail("a usage error was retried"))
