"""Deterministic ids: pstfast's uuid5 is the standard library's, bit for bit."""

from __future__ import annotations

import uuid

from hypothesis import given, strategies as st

from pstfast import ids


@given(st.text())
def test_uuid5_equals_the_standard_library(name: str) -> None:
    assert ids.uuid5(name) == str(uuid.uuid5(ids.NAMESPACE, name))


def test_ids_are_version_5_and_depend_on_every_part() -> None:
    a = ids.email_id("0123456789abcdef", 2097188)
    assert uuid.UUID(a).version == 5
    assert a != ids.email_id("0123456789abcdef", 2097220) != ids.email_id("fedcba9876543210", 2097188)
    assert ids.attachment_id(a, 0) != ids.attachment_id(a, 1) != ids.embedded_email_id(a, 1)
