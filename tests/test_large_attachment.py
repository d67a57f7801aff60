"""A big attachment streams to its object file (issue 19, item 11): a worker's memory stays
flat in the attachment's size, with both readers, and the bytes are the writer's.

``PSTFAST_BIG_ATTACHMENT_MB`` (default 120; 1024 on demand) sets the size; libpff itself
refuses values past its allocation limit (a 1 GiB attachment is a warning row with
``--reader libpff``), so its case runs up to 256 MB."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pstfast.pst.write.messaging import Attachment, Message, PstWriter, Recipient

MB = int(os.environ.get("PSTFAST_BIG_ATTACHMENT_MB", "120"))
T0 = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)
#: the peak RSS of one extract process (``--workers 1``: it reads the items itself)
_PEAK = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "pstfast.cli", *sys.argv[1:]], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def _pst(path: Path, size: int) -> tuple[Path, str]:
    # 1 MiB of varied bytes repeated: the permutation encoding and the CRCs see real data
    chunk = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(1 << 20))
    data = chunk * (size >> 20) + chunk[: size & 0xFFFFF]
    with PstWriter(path) as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        pst.add_message(inbox, Message(subject="big", sender_name="A", sender_email="a@example.com", sent_at=T0,
                                       received_at=T0, recipients=[Recipient("B", "b@example.com")], body_text="see",
                                       attachments=[Attachment("big.bin", "application/octet-stream", data),
                                                    Attachment("small.txt", "text/plain", b"small")]))
    return path, hashlib.sha256(data).hexdigest()


def _peak_mb(pst: Path, out: Path, reader: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PEAK, "extract", str(pst), "--out", str(out), "--workers", "1",
                           "--pst-file-id", "big", "--reader", reader], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_a_big_attachment_streams_and_memory_stays_flat(tmp_path: Path, reader: str) -> None:
    size = MB << 20 if reader == "pstfast" else min(MB, 256) << 20
    big, big_sha = _pst(tmp_path / "big.pst", size)
    small, _ = _pst(tmp_path / "small.pst", 1 << 20)
    peak_big = _peak_mb(big, tmp_path / "big", reader)
    peak_small = _peak_mb(small, tmp_path / "small", reader)
    prefix = tmp_path / "big" / "pst-v2" / "big"
    obj = prefix / "attachments" / big_sha
    assert obj.stat().st_size == size and hashlib.sha256(obj.read_bytes()).hexdigest() == big_sha
    manifest = json.loads((prefix / "manifest.json").read_text())
    assert manifest["counts"]["attachments"] == 2 and manifest["objects"][f"attachments/{big_sha}"]["size"] == size
    # flat: the big attachment adds far less than its size to the process's peak
    assert peak_big - peak_small < 100, (peak_big, peak_small)
    assert peak_big <= 400, peak_big
