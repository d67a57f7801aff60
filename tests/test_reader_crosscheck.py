"""pstfast's own PST reader against libpff: the same folders, the same items, the same fields.

The extract stage reads with :mod:`pstfast.pst.reader`; libpff (pypff) is the reference.
Both feed the same field logic (:class:`pstfast.extraction.items.ItemReader`), so every
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

from pstfast.extraction.items import ItemReader, list_folders, open_pypff

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
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=400, seed=11, embedded_rate=0.2))
    assert _assert_same_as_libpff(pst) >= 400


def test_the_comparison_can_fail() -> None:
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


OUTPUTS = ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet", "attachments.ndjson.gz", "attachments.csv.gz",
           "errors.ndjson")


def _outputs(pst: Path, out: Path, **kw) -> tuple[dict[str, bytes], Any]:
    import pstfast
    from pstfast import storage

    manifest = pstfast.extract(pst, out, progress=False, **kw)
    prefix = Path(storage.output_prefix(out, manifest.pst_file_id))
    return {name: (prefix / name).read_bytes() for name in OUTPUTS}, manifest


@pytest.mark.skipif(not PSTS, reason=f"public corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", PSTS)
def test_extract_with_libpff_gives_the_same_bytes(name: str, tmp_path: Path) -> None:
    ours, m1 = _outputs(CORPUS / name, tmp_path / "a", workers=1)
    theirs, m2 = _outputs(CORPUS / name, tmp_path / "b", workers=1, reader="libpff")
    assert (m1.extra["reader"], m2.extra["reader"]) == ("pstfast", "libpff")
    assert ours == theirs and m1.counts == m2.counts


def test_extract_with_libpff_on_a_writer_pst_two_workers(tmp_path: Path) -> None:
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=300, seed=12, embedded_rate=0.2))
    ours, m1 = _outputs(pst, tmp_path / "a", workers=2, items_per_shard=40)
    theirs, m2 = _outputs(pst, tmp_path / "b", workers=2, items_per_shard=40, reader="libpff")
    assert ours == theirs and m1.counts == m2.counts and m1.counts["emails"] > 300


def test_unknown_reader_is_a_usage_error(tmp_path: Path) -> None:
    import pstfast
    from pstfast.errors import UsageError

    with pytest.raises(UsageError, match="pstfast or libpff"):
        pstfast.extract(CORPUS / "pstsdk-sample1.pst", tmp_path, reader="readpst")
