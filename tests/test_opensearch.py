"""The OpenSearch index backend against a real OpenSearch-compatible server (osmem-server on
127.0.0.1, a fresh clone per test): bulk then ``_search`` finds messages by body words, a
resend is idempotent, documents the server rejects reach the stage result, and huge fields
are cut as for PostgreSQL. The documents come from a writer-made PST, extracted and loaded."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

import pstfast
from pstfast.enrich.index import index_name
from pstfast.pipeline.stage import run_stage
from pstfast.pst.write.messaging import Attachment, Message, PstWriter, Recipient
from pstfast.synthetic import documents

T0 = dt.datetime(2024, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)
PROJECT = "os-proj"
BODIES = {"1001": "the quarterly marmalade figures are attached",
          "1002": "shall we try the new okapi cafe on friday",
          "1003": "flights to reykjavik are booked for the offsite",
          "not a number": "a message whose subject the conflicting mapping cannot take"}


@pytest.fixture(scope="module")
def osmem() -> Iterator[OsmemServer]:
    with OsmemServer.start(japanese=False, addr="127.0.0.1:0") as server:
        yield server


@pytest.fixture
def os_url(osmem: OsmemServer) -> Iterator[str]:
    with osmem.clone() as clone:
        assert clone.url.startswith("http://127.0.0.1:")
        yield clone.url


@pytest.fixture(scope="module")
def pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("os") / "os.pst"
    with PstWriter(path) as writer:
        inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
        for subject, body in BODIES.items():
            writer.add_message(inbox, Message(subject=subject, sender_name="Ann", sender_email="ann@example.com",
                                              sent_at=T0, received_at=T0, body_text=body,
                                              recipients=[Recipient("Bob", "bob@example.com")]))
    return path


@pytest.fixture
def loaded(pst: Path, tmp_path: Path, pg_dsn: str) -> tuple[Path, str]:
    manifest = pstfast.extract(pst, tmp_path, pst_file_id="os1", project_id=PROJECT, workers=1, progress=False)
    pstfast.load(tmp_path, manifest.pst_file_id, pg_dsn)
    return tmp_path, pg_dsn


def _client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=30)


def _search(url: str, words: str) -> list[str]:
    found = _client(url).search(index=index_name(PROJECT), body={"query": {"match": {"body_text": words}}})
    return [hit["_source"]["subject"] for hit in found["hits"]["hits"]]


def _all_docs(url: str) -> dict[str, Any]:
    found = _client(url).search(index=index_name(PROJECT), body={"query": {"match_all": {}}, "size": 100})
    return {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}


def _index(root: Path, dsn: str, url: str) -> Any:
    return run_stage("index", pst_file_id="os1", out=root, db=dsn, index_backend="opensearch", opensearch_url=url)


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "pst-v2" / "os1" / "stages" / "index" / "manifest.json").read_text())


def test_bulk_then_search_finds_messages_by_body_words(loaded: tuple[Path, str], os_url: str) -> None:
    root, dsn = loaded
    outcome = _index(root, dsn, os_url)
    assert outcome.result.documents == len(BODIES)
    assert outcome.report.counts["documents"] == len(BODIES) and outcome.report.counts["rejected"] == 0
    assert _search(os_url, "marmalade") == ["1001"]
    assert _search(os_url, "okapi") == ["1002"]
    assert _search(os_url, "reykjavik offsite") == ["1003"]
    assert _search(os_url, "zanzibar") == []
    docs = _all_docs(os_url)
    assert sorted(d["subject"] for d in docs.values()) == sorted(BODIES)
    assert all(doc["email_id"] == _id and doc["pst_file_id"] == "os1" for _id, doc in docs.items())


def test_a_resend_is_idempotent(loaded: tuple[Path, str], os_url: str) -> None:
    root, dsn = loaded
    _index(root, dsn, os_url)
    first = _all_docs(os_url)
    again = _index(root, dsn, os_url)
    assert again.result.documents == len(BODIES) and again.report.status == "succeeded"
    assert _all_docs(os_url) == first
    assert _client(os_url).count(index=index_name(PROJECT))["count"] == len(BODIES)


def test_a_document_the_server_rejects_reaches_the_stage_result(loaded: tuple[Path, str], os_url: str) -> None:
    root, dsn = loaded
    # an index made by someone else, whose mapping takes only numeric subjects
    _client(os_url).indices.create(index=index_name(PROJECT), body={"mappings": {"properties": {
        "subject": {"type": "long"}}}})
    outcome = _index(root, dsn, os_url)
    assert outcome.report.status == "succeeded"
    assert outcome.result.documents == len(BODIES) - 1
    assert outcome.report.counts["rejected"] == 1
    manifest = _manifest(root)
    assert manifest["counts"]["rejected"] == 1
    [warning] = manifest["warnings"]
    assert "rejected by OpenSearch" in warning and "mapper_parsing_exception" in warning
    assert sorted(d["subject"] for d in _all_docs(os_url).values()) == ["1001", "1002", "1003"]


def test_huge_fields_are_cut_for_opensearch_too(tmp_path: Path, pg_dsn: str, os_url: str) -> None:
    path = tmp_path / "huge.pst"
    with PstWriter(path) as writer:
        inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
        writer.add_message(inbox, Message(subject="small", sender_name="Ann", sender_email="ann@example.com",
                                          sent_at=T0, received_at=T0, body_text="an ordinary wombat",
                                          recipients=[Recipient("Bob", "bob@example.com")]))
        writer.add_message(inbox, Message(
            subject="all hands", sender_name="Comms", sender_email="comms@example.com", sent_at=T0, received_at=T0,
            body_text="aardvarkstart " + "filler words " * 100_000,
            recipients=[Recipient(f"P {i:06d}", f"p{i:06d}@staff.example.com") for i in range(60_000)]))
    out = tmp_path / "out"
    pstfast.extract(path, out, pst_file_id="os1", project_id=PROJECT, workers=1, progress=False)
    pstfast.load(out, "os1", pg_dsn)
    outcome = _index(out, pg_dsn, os_url)
    assert outcome.report.counts["cut_entries"] == 1 and outcome.result.documents == 2
    [warning] = _manifest(out)["warnings"]
    assert "recipients" in warning and "body" in warning
    assert _search(os_url, "aardvarkstart") == ["all hands"]
    assert _search(os_url, "wombat") == ["small"]
    huge = next(d for d in _all_docs(os_url).values() if d["subject"] == "all hands")
    assert len(huge["body_text"]) <= 1_000_000 and sum(len(r) for r in huge["to"]) <= 1_000_000
    assert huge["cut"]["body"][1] == len("aardvarkstart " + "filler words " * 100_000)
    assert huge["cut"]["recipients"][0] < huge["cut"]["recipients"][1]


def test_attachment_texts_and_vectors_reach_opensearch(tmp_path: Path, pg_dsn: str, os_url: str) -> None:
    """Attachment documents name their e-mail and thread; the index is created with a k-NN
    mapping and every document carries its 384-dimensional ``embedding``. osmem-server has no
    k-NN query: that the mapping is accepted and the vectors round-trip is what it can show."""
    path = tmp_path / "att.pst"
    with PstWriter(path) as writer:
        inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
        writer.add_message(inbox, Message(
            subject="plans", sender_name="Ann", sender_email="ann@example.com", sent_at=T0, received_at=T0,
            body_text="see the attached memo", recipients=[Recipient("Bob", "bob@example.com")],
            attachments=[Attachment("memo.docx", documents.KINDS["docx"][1], documents.docx("capybara treaty"))]))
    out = tmp_path / "out"
    pstfast.extract(path, out, pst_file_id="os1", project_id=PROJECT, workers=1, progress=False)
    pstfast.load(out, "os1", pg_dsn)
    pstfast.thread(out, "os1", pg_dsn)
    outcome = run_stage("index", pst_file_id="os1", out=out, db=pg_dsn, index_backend="opensearch",
                        opensearch_url=os_url, embeddings="fast")
    assert (outcome.result.documents, outcome.result.attachment_entries) == (1, 1)
    client = _client(os_url)
    mapping = client.indices.get_mapping(index=index_name(PROJECT))[index_name(PROJECT)]["mappings"]["properties"]
    assert mapping["embedding"]["type"] == "knn_vector" and mapping["embedding"]["dimension"] == 384
    found = client.search(index=index_name(PROJECT), body={"query": {"match": {"attachment_text": "capybara"}}})
    [hit] = found["hits"]["hits"]
    email = next(d for d in _all_docs(os_url).values() if d["doc_type"] == "email")
    assert hit["_source"]["doc_type"] == "attachment" and hit["_source"]["filename"] == "memo.docx"
    assert hit["_source"]["email_id"] == email["email_id"] and hit["_source"]["thread_id"] == email["thread_id"]
    assert len(hit["_source"]["embedding"]) == 384 and len(email["embedding"]) == 384
    again = run_stage("index", pst_file_id="os1", out=out, db=pg_dsn, index_backend="opensearch",
                      opensearch_url=os_url, embeddings="fast")
    assert again.report.status == "succeeded" and client.count(index=index_name(PROJECT))["count"] == 2
