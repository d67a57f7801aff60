"""Benchmark: uploading an extract's outputs to S3, one PUT at a time vs in parallel.

Run with ``python -m pytest perf/bench_s3_upload.py --benchmark-enable -q`` (benchmarks
are disabled by default in pyproject's addopts)::

    PSTFAST_BENCH_OBJECTS=2000 PSTFAST_BENCH_ROUNDS=3 python -m pytest perf/bench_s3_upload.py --benchmark-enable -q

``s3_upload`` group, the same files to moto's standalone server on 127.0.0.1 (a real S3
HTTP API, in one process of its own): ``PSTFAST_BENCH_OBJECTS`` (default 2000) objects
shaped like an extract's output (a 21k-message PST gives ~10,000: mostly
``attachments/<sha256>`` of a few to a few hundred KB, plus the few large NDJSON/CSV/Parquet
files) through :func:`pstfast.storage.upload_many` with concurrency 1 (what extract did
before: one PUT at a time) and 16 (``PSTFAST_UPLOAD_CONCURRENCY``'s default). Each entry
records ``objects_per_s`` and ``mb_per_s``; the ratio parallel/serial is printed at the end.

moto keeps objects in memory and answers from one Python process, so its per-PUT cost is
CPU, not network latency: real S3 (~10-30 ms per PUT from EC2) gains more from concurrency
than this measures.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pstfast import storage

OBJECTS = int(os.environ.get("PSTFAST_BENCH_OBJECTS", "2000"))
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "3"))
RESULTS: dict[int, float] = {}


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pipeline_support import MotoServer

    server = MotoServer().start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    import boto3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3", endpoint_url=server.url).create_bucket(Bucket="pipeline")
    try:
        yield server.url
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], int]:
    """Files shaped like an extract's output folder: attachments (log-uniform 2 KB-256 KB)."""
    folder = tmp_path_factory.mktemp("upload-bench")
    rng = random.Random(22)
    files, total = [], 0
    for n in range(OBJECTS):
        size = int(2 ** rng.uniform(11, 18))
        path = folder / f"a{n:06d}"
        path.write_bytes(rng.randbytes(size))
        files.append(path)
        total += size
    return files, total


@pytest.mark.benchmark(group="s3_upload")
@pytest.mark.parametrize("concurrency", [1, 16], ids=["serial", "parallel16"])
def test_upload(benchmark: Any, moto_s3: str, outputs: tuple[list[Path], int], concurrency: int) -> None:
    files, total = outputs
    counter = iter(range(1_000_000))

    def setup() -> tuple[tuple[list[tuple[Path, str]]], dict[str, Any]]:
        prefix = f"s3://pipeline/pst-v2/bench-{concurrency}-{next(counter)}"
        return ([(f, f"{prefix}/attachments/{f.name}") for f in files],), {}

    def upload(pairs: list[tuple[Path, str]]) -> None:
        storage.upload_many(pairs, concurrency=concurrency)

    benchmark.pedantic(upload, setup=setup, rounds=ROUNDS, iterations=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(objects=len(files), mb=round(total / 1e6, 1), concurrency=concurrency,
                                objects_per_s=round(len(files) / seconds, 1),
                                mb_per_s=round(total / 1e6 / seconds, 1))
    RESULTS[concurrency] = len(files) / seconds
    # the last round's objects are all there, with their bytes
    sample = files[:: max(1, len(files) // 20)]
    prefix = f"s3://pipeline/pst-v2/bench-{concurrency}-{ROUNDS - 1}"
    for f in sample:
        assert storage.read_bytes(f"{prefix}/attachments/{f.name}") == f.read_bytes()
    if 1 in RESULTS and 16 in RESULTS:
        print(f"\ns3 upload of {len(files)} objects ({total / 1e6:.0f} MB) to moto_server: "
              f"serial {RESULTS[1]:.0f} objects/s, parallel(16) {RESULTS[16]:.0f} objects/s, "
              f"ratio {RESULTS[16] / RESULTS[1]:.2f}x")
