"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Library\n\n```python\n(.*?)```", text, re.S)
    assert block, "README has a Library section with a python block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PSTFAST_DATABASE_URL", pg_dsn)
    monkeypatch.setenv("PSTFAST_HOME", str(tmp_path / "home"))
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["manifest"].counts["emails"] > 0
    assert namespace["result"].ok
    assert all(hit.email_id for hit in namespace["hits"])
