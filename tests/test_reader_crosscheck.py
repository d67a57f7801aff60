"""pstfast's own PST reader against libpff: the same folders, the same items, the same fields.

The extract stage reads with :mod:`pstfast.pst.reader`; libpff (pypff) is the reference.
Both feed the same field logic (:class:`pstfast.reader.ItemReader`), so every
``ReadMessage`` (every field, recipient, attachment byte and embedded message) must be
equal whichever reader produced it, on every corpus file and on a writer-made PST, ANSI
and Unicode, permute-encoded and unencoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypff
import pytest

from pstfast.reader import ItemReader, list_folders, open_pypff

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "public"
PSTS = sorted(p.name for p in CORPUS.glob("*.pst")) if CORPUS.is_dir() else []


def _pypff_folders(folder: Any, names: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(folder path, pypff folder) depth first, normal folders only (as the extract stage lists them)."""
    yield "/".join(names), folder
    for i in range(folder.number_of_sub_folders):
        child = folder.get_sub_folder(i)
        if child.identifier & 0x1F == 0x02:  # search folders link to messages filed elsewhere
            yield from _pypff_folders(child, names + (child.name or "",))


def _assert_same_as_libpff(path: Path) -> int:
    reader = ItemReader(path)
    pff = open_pypff(path)
    folders, failures = list_folders(reader)
    assert failures == []
    want = [(p, f.identifier, tuple(f.get_sub_message(i).identifier for i in range(f.number_of_sub_messages)))
            for p, f in _pypff_folders(pff.get_root_folder())]
    assert [(f.folder_path, f.node_id, f.message_nids) for f in folders] == want
    compared = 0
    for _, folder in _pypff_folders(pff.get_root_folder()):
        for i in range(folder.number_of_sub_messages):
            item = folder.get_sub_message(i)
            assert reader.read(reader.message(item.identifier)) == reader.read(reader.pypff_item(item))
            compared += 1
    reader.close()
    return compared


@pytest.mark.skipif(not PSTS, reason=f"public corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", PSTS)
def test_corpus_items_equal_libpff(name: str) -> None:
    assert _assert_same_as_libpff(CORPUS / name) >= 1


def test_writer_pst_items_equal_libpff(tmp_path: Path) -> None:
    from pstfast.synthetic import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=400, seed=11, embedded_rate=0.2))
    assert _assert_same_as_libpff(pst) >= 400


def test_libpff_and_pstfast_readers_differ_where_they_should_not_be_compared() -> None:
    """The comparison above is not vacuous: a different item reads differently."""
    path = CORPUS / "libpst-dist-list.pst"
    if not path.exists():
        pytest.skip(f"public corpus not found at {CORPUS}")
    reader = ItemReader(path)
    pff = open_pypff(path)
    items = [f.get_sub_message(i) for _, f in _pypff_folders(pff.get_root_folder())
             for i in range(f.number_of_sub_messages)]
    assert len(items) >= 2
    assert reader.read(reader.message(items[0].identifier)) != reader.read(reader.pypff_item(items[1]))
    assert isinstance(pff, pypff.file)
