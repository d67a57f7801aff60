"""Exchange (EX) addresses (issue 17): an X500 DN that stands for an address takes the SMTP
address the same PST pairs it with elsewhere, the same for any worker count, shard plan or
reader; the DN stays in ``sender_x500`` / the recipients' ``x500``."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import pstfast
from pstfast.pst.write.messaging import Message, PstWriter, Recipient

T0 = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
ORG = "/O=CONTOSO/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=RECIPIENTS/CN="
ANN, BOB, CAT, DAN = (ORG + n for n in ("ANN", "BOB", "CAT", "DAN"))


def _exchange_msg(subject: str, sender_dn: str, recipients: list[Recipient], **kw: Any) -> Message:
    # internal Exchange mail: EX sender without an SMTP property, no transport headers
    return Message(subject=subject, sender_name=subject, sender_email="unused@contoso.com", sender_x500=sender_dn,
                   sent_at=T0, received_at=T0, recipients=recipients, body_text=f"body of {subject}", **kw)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exchange") / "exchange.pst"
    with PstWriter(path) as pst:
        sent = pst.add_folder(pst.ipm_subtree, "Sent Items")
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        # Sent Items: Ann's own mail; her SMTP address is nowhere in this folder
        pst.add_message(sent, _exchange_msg("from ann", ANN, [Recipient("Bob", "bob@contoso.com", x500=BOB)]))
        # a recipient with the DN alone: Cat's address is only on her own messages (below)
        pst.add_message(sent, _exchange_msg("to cat", ANN, [Recipient("Cat", "?", x500=CAT.lower(), smtp_known=False)]))
        # Dan is never paired with an SMTP address anywhere in the file
        pst.add_message(sent, _exchange_msg("to dan", ANN, [Recipient("Dan", "?", x500=DAN, smtp_known=False)]))
        # Inbox: Ann as a recipient row with her SMTP address (another case of the same DN)
        pst.add_message(inbox, _exchange_msg("from bob", BOB, [Recipient("Ann", "ann@contoso.com", x500=ANN.lower())]))
        # Cat's own messages carry PR_SENDER_SMTP_ADDRESS: twice the new address, once an old one
        for subject, smtp in (("cat 1", "cat@contoso.com"), ("cat 2", "cat@contoso.com"), ("cat 3", "cat.old@contoso.com")):
            pst.add_message(inbox, Message(subject=subject, sender_name="Cat", sender_email=smtp, sender_x500=CAT,
                                           sender_smtp_known=True, sent_at=T0, received_at=T0,
                                           recipients=[Recipient("Ann", "ann@contoso.com", x500=ANN)]))
    return path


def _extract(pst: Path, out: Path, **kw: Any) -> tuple[dict[str, dict[str, Any]], Path]:
    pstfast.extract(pst, out, pst_file_id="ex", **kw)
    prefix = out / "pst-v2" / "ex"
    with gzip.open(prefix / "emails.ndjson.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    return {r["subject"]: r for r in rows}, prefix


def test_an_exchange_sender_takes_the_smtp_address_another_message_pairs_it_with(mailbox: Path, tmp_path: Path) -> None:
    rows, _ = _extract(mailbox, tmp_path / "o", workers=1)
    ann = rows["from ann"]
    assert (ann["sender_email"], ann["sender_x500"]) == ("ann@contoso.com", ANN)
    assert ann["to"] == [{"name": "Bob", "email": "bob@contoso.com", "x500": BOB}]
    assert ann["recipient_x500"] == [BOB]
    # a DN-only recipient: resolved from the sender properties of other messages, by the
    # address seen most often (cat@ twice, cat.old@ once), whatever the case of the DN
    assert rows["to cat"]["to"] == [{"name": "Cat", "email": "cat@contoso.com", "x500": CAT.lower()}]
    # nowhere paired with an SMTP address: the DN stays where the address goes
    assert rows["to dan"]["to"] == [{"name": "Dan", "email": DAN, "x500": DAN}]
    # the item's own SMTP property wins over the map
    assert rows["cat 3"]["sender_email"] == "cat.old@contoso.com"
    # the same person deduplicates and threads as one: one sender address for Ann everywhere
    assert {rows[s]["sender_email"] for s in ("from ann", "to cat", "to dan")} == {"ann@contoso.com"}


def test_the_same_output_for_any_worker_count_shard_plan_or_reader(mailbox: Path, tmp_path: Path) -> None:
    def digest(prefix: Path, name: str) -> str:
        data = (prefix / name).read_bytes()
        # gzip members are per shard: another shard plan gives other bytes of the same rows
        return hashlib.sha256(gzip.decompress(data) if name.endswith(".gz") else data).hexdigest()

    plans = [{"items_per_shard": 1}, {"items_per_shard": 3}, {}]
    by_plan = []
    for i, plan in enumerate(plans):
        runs = set()
        for j, kw in enumerate([{"workers": 1}, {"workers": 2}, {"workers": 1, "reader": "libpff"}]):
            _, prefix = _extract(mailbox, tmp_path / f"o{i}{j}", **plan, **kw)
            runs.add(tuple(hashlib.sha256((prefix / name).read_bytes()).hexdigest()
                           for name in ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet", "errors.ndjson")))
            by_plan.append(tuple(digest(prefix, name) for name in ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet")))
        assert len(runs) == 1, plan  # byte for byte, whatever the worker count or reader
    assert len(set(by_plan)) == 1


def test_libpff_reads_the_pairs_the_map_is_built_from(mailbox: Path, tmp_path: Path) -> None:
    """An independent reader sees the same stored DNs and SMTP addresses on the rows."""
    import pffread

    stored = {}
    for _, item in pffread.walk(str(mailbox)):
        got = pffread.message(item)
        stored[got["subject"]] = got
    assert (stored["from ann"]["sender_x500"], stored["from ann"]["sender_email"]) == (ANN, None)
    assert stored["from bob"]["to"] == [{"name": "Ann", "email": "ann@contoso.com", "x500": ANN.lower(),
                                         "smtp_known": True}]
    assert stored["to cat"]["to"][0]["email"] is None
    rows, _ = _extract(mailbox, tmp_path / "o", workers=1)
    for subject, want in stored.items():
        got = rows[subject]
        for kind in ("to", "cc", "bcc"):
            assert [e["x500"] for e in got[kind]] == [e["x500"] for e in want[kind]]
            assert all(g["email"] == w["email"] for g, w in zip(got[kind], want[kind]) if w["email"])


def test_load_keeps_the_dns(mailbox: Path, tmp_path: Path, pg_dsn: str) -> None:
    import psycopg

    pstfast.extract(mailbox, tmp_path / "o", pst_file_id="ex", project_id="px", workers=1)
    pstfast.load(tmp_path / "o", "ex", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        found = conn.execute("SELECT sender_email, sender_x500, \"to\", recipient_x500 FROM email_messages "
                             "WHERE subject = 'from ann'").fetchone()
    assert found == ("ann@contoso.com", ANN, ["bob@contoso.com"], [BOB])
