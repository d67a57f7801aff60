"""Benchmark: attachment text, embeddings, and the index stage per mode (issue 21).

Run with ``python -m pytest perf/bench_search.py --benchmark-enable -q`` (add
``--benchmark-json=perf/results/search.json`` to keep it). The text and embedding figures
are per core (one process, ``PSTFAST_EMBED_THREADS=1``); the index stage runs as it does in
a job (attachment text workers and search-entry connections: one per core), embedding on
one thread. Side by side in one run, medians:

* ``text`` group: MB/s of :func:`pstfast.enrich.textract.extract` per format, on documents
  made by pstfast.synthetic.documents (a planted phrase plus filler, 20 KB..350 KB);
  ``extra_info["mb_per_s"]``.
* ``embed`` group: texts/s of each embedding mode on 64 e-mail-sized texts (~600
  characters); ``extra_info["texts_per_s"]``.
* ``index`` group: the index stage (postgres backend) over a writer PST of
  ``PSTFAST_BENCH_SEARCH_EMAILS`` (1,000) e-mails, one in five with a real document
  attached, for embeddings none / fast / quality, each round from an empty index (the
  project's attachment text cache emptied too); ``extra_info["seconds_per_1000"]``.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pstfast
from perf.pgtools import Databases
from pstfast.enrich.textract import extract
from pstfast.pst.write.messaging import Attachment, Message, PstWriter, Recipient
from pstfast.synthetic import documents

EMAILS = int(os.environ.get("PSTFAST_BENCH_SEARCH_EMAILS", "1000"))
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "3"))
FILLER = {"pdf": 60, "docx": 60, "xlsx": 2000, "pptx": 15, "html": 400, "text": 400, "zip": 60}
WORDS = ("budget contract meeting shipment invoice review schedule approval supplier client report "
         "deadline forecast audit payroll office travel training policy project").split()
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True, scope="module")
def one_core() -> Iterator[None]:
    old = os.environ.get("PSTFAST_EMBED_THREADS")
    os.environ["PSTFAST_EMBED_THREADS"] = "1"
    yield
    if old is None:
        os.environ.pop("PSTFAST_EMBED_THREADS", None)
    else:
        os.environ["PSTFAST_EMBED_THREADS"] = old


@pytest.mark.parametrize("kind", list(documents.KINDS))
def test_attachment_text(benchmark: Any, kind: str) -> None:
    ext, mime = documents.KINDS[kind]
    data = documents.make(kind, "heliotrope anchovy settlement", FILLER[kind])
    benchmark.group = "text"
    result = benchmark(extract, data, f"bench.{ext}", mime)
    assert result.status == "ok" and "heliotrope anchovy settlement" in " ".join(result.text.split())
    benchmark.extra_info.update(bytes=len(data), mb_per_s=round(len(data) / benchmark.stats.stats.median / 1e6, 3))


def _texts(n: int, seed: int = 21) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(90)) for _ in range(n)]


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_embeddings(benchmark: Any, mode: str) -> None:
    from pstfast.enrich import embed

    embed._cache.clear()  # this module's thread count
    model = embed.embedder(mode)
    texts = _texts(64)
    benchmark.group = "embed"
    vectors = benchmark(model.encode, texts)
    assert vectors.shape == (64, embed.DIMENSIONS)
    benchmark.extra_info.update(texts=len(texts), texts_per_s=round(len(texts) / benchmark.stats.stats.median, 1))


@pytest.fixture(scope="module")
def indexed_input(tmp_path_factory: pytest.TempPathFactory, dbs: Databases) -> tuple[Path, str]:
    """A writer PST of EMAILS e-mails (one in five with a document), extracted, loaded and
    threaded once: (output root, dsn)."""
    tmp = tmp_path_factory.mktemp("bench-search")
    rng = random.Random(21)
    kinds = list(documents.KINDS)
    path = tmp / "search.pst"
    with PstWriter(path) as writer:
        inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
        for n in range(EMAILS):
            attachments = []
            if n % 5 == 0:
                kind = kinds[(n // 5) % len(kinds)]
                ext, mime = documents.KINDS[kind]
                attachments.append(Attachment(f"doc{n}.{ext}", mime, documents.make(kind, f"item {n} notes", 10)))
            writer.add_message(inbox, Message(
                subject=" ".join(rng.choice(WORDS) for _ in range(5)), sender_name="Ann",
                sender_email="ann@example.com", sent_at=T0 + dt.timedelta(minutes=n), received_at=T0,
                body_text=" ".join(rng.choice(WORDS) for _ in range(150)),
                recipients=[Recipient("Bob", "bob@example.com")], attachments=attachments))
    dsn = dbs.fresh()
    pstfast.extract(path, tmp / "out", pst_file_id="bs1", project_id="bench", progress=False)
    pstfast.load(tmp / "out", "bs1", dsn)
    pstfast.thread(tmp / "out", "bs1", dsn)
    return tmp / "out", dsn


def _empty_index(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM email_search; DELETE FROM attachment_search; DELETE FROM attachment_texts")
        if conn.execute("SELECT to_regclass('email_vectors')").fetchone()[0]:
            conn.execute("DELETE FROM email_vectors; DELETE FROM attachment_vectors")


@pytest.mark.parametrize("mode", ["none", "fast", "quality"])
def test_index_stage(benchmark: Any, indexed_input: tuple[Path, str], mode: str) -> None:
    from pstfast.enrich import embed

    root, dsn = indexed_input
    embed._cache.clear()
    if mode != "none":
        embed.embedder(mode)  # loaded once per process, as in a Batch job: not the stage's cost
    benchmark.group = "index"
    result = benchmark.pedantic(pstfast.index, args=(root, "bs1", dsn), kwargs={"embeddings": mode},
                                setup=lambda: _empty_index(dsn), rounds=ROUNDS, iterations=1)
    assert result.documents == EMAILS and result.attachment_statuses.get("ok") == EMAILS // 5
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(messages=EMAILS, seconds_per_1000=round(median * 1000 / EMAILS, 2),
                                attachment_text_seconds=result.timings.get("attachment_text"),
                                embedding_seconds=result.timings.get("embeddings"))
