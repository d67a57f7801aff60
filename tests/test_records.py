"""Record helpers: text cleaning agrees with its definition on any text."""

from __future__ import annotations

import re

from hypothesis import given, strategies as st

from pstfast.records import clean_text

# any code point, surrogates and NUL included (what a PST's UTF-16 can decode to)
TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()))


@given(TEXT)
def test_clean_text_replaces_exactly_nul_and_surrogates(value: str) -> None:
    assert clean_text(value) == re.sub("[\x00\ud800-\udfff]", "\ufffd", value)


def test_clean_text_examples() -> None:
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("ok \ud83d end") == "ok \ufffd end"
    assert clean_text("plain") == "plain" and clean_text(None) is None
