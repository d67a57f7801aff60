"""The compiled read path (:mod:`pstfast.pst.compiled`) against the Python reader it mirrors.

The extract stage reads messages with the compiled path when numba's cache holds it; the
Python reader (itself checked against libpff in test_reader_crosscheck.py) reads whatever
the compiled path stops at. Both must give equal ``ReadMessage``s, and equal errors, on
every corpus file, on writer-made PSTs (Unicode, permute, cyclic and unencoded, embedded
messages, large bodies and attachments) and on the writer's damaged variants.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pst_variants import blocks, reencode_cyclic, rewrite_block

from pstfast.pst import compiled
from pstfast.extraction.items import CompiledItem, ItemReader, list_folders
from pstfast.synthetic.corpus import SynthOptions, synth

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "public"
PSTS = sorted(p.name for p in CORPUS.glob("*.pst")) if CORPUS.is_dir() else []


def _read_all(path: Path, use_compiled: bool) -> tuple[list[Any], int]:
    """Every item's ReadMessage (or its error), and how many the compiled path read whole."""
    reader = ItemReader(path, compiled=use_compiled)
    try:
        assert (reader.compiled is not None) == use_compiled
        out: list[Any] = []
        whole = 0
        for folder in list_folders(reader)[0]:
            for nid in folder.message_nids:
                try:
                    item = reader.message(nid)
                    whole += isinstance(item, CompiledItem)
                    out.append(reader.read(item))
                except Exception as exc:  # compared below, message and all
                    out.append((type(exc).__name__, str(exc)))
        return out, whole
    finally:
        reader.close()


def _assert_same(path: Path) -> tuple[int, int]:
    """(items, items the compiled path read whole); fails unless both paths agree on every item."""
    python, none = _read_all(path, False)
    fast, whole = _read_all(path, True)
    assert none == 0
    assert fast == python
    return len(python), whole


@pytest.fixture(scope="module")
def writer_pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pst = tmp_path_factory.mktemp("compiled") / "w.pst"
    # embedded messages (nested too), bodies and attachments large enough for data trees
    synth(pst, options=SynthOptions(messages=400, seed=21, embedded_rate=0.25, attachment_rate=0.5,
                                    large_attachment_every=150, large_body_every=20),
          damaged=pst.parent / "damaged")
    return pst


@pytest.mark.skipif(not PSTS, reason=f"public corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", PSTS)
def test_corpus_reads_the_same(name: str) -> None:
    items, whole = _assert_same(CORPUS / name)  # ANSI and Unicode, permute-encoded
    assert items >= 1 and whole == items


def test_writer_pst_reads_the_same(writer_pst: Path) -> None:
    items, whole = _assert_same(writer_pst)  # unencoded
    assert items > 400 and whole == items
    reader = ItemReader(writer_pst, compiled=True)
    try:  # embedded messages are read by the compiled path too
        nids = [nid for f in list_folders(reader)[0] for nid in f.message_nids]
        embedded = [reader.message(n).embedded(i, values, handle)
                    for n in nids for i, (values, handle) in enumerate(reader.message(n).read.attachments)
                    if values.get(0x3705, (0, b""))[1][:1] == b"\x05"]
        assert len(embedded) >= 20 and all(isinstance(e, CompiledItem) for e in embedded)
    finally:
        reader.close()


def test_cyclic_pst_reads_the_same(writer_pst: Path, tmp_path: Path) -> None:
    cyclic = tmp_path / "cyclic.pst"
    reencode_cyclic(writer_pst, cyclic)
    items, whole = _assert_same(cyclic)
    assert whole == items


@pytest.mark.parametrize("variant", ["truncated", "flipped_block", "broken_btree"])
def test_damaged_pst_fails_the_same(writer_pst: Path, variant: str) -> None:
    """Where the compiled path stops, the Python reader reads the item again and reports the
    same error (or reads what it can) as without the compiled path."""
    path = writer_pst.parent / "damaged" / f"w.{variant}.pst"
    try:
        python, _ = _read_all(path, False)
    except Exception as exc:  # the file itself is unreadable (its folders)
        with pytest.raises(type(exc), match="."):
            _read_all(path, True)
        return
    fast, whole = _read_all(path, True)
    assert fast == python
    assert whole < len(python)  # the damage was met, and left to the Python reader
    assert any(isinstance(item, tuple) for item in python) or variant == "flipped_block"


def test_growing_the_workspace_changes_nothing(writer_pst: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message overflows a tiny workspace: the call is repeated with larger arrays, and
    a workspace grown past 16x its first size is dropped after the message (flat memory)."""
    monkeypatch.setattr(compiled, "_INITIAL_SIZE", 64)
    items, whole = _assert_same(writer_pst)
    assert whole == items
    grown: list[int] = []
    grow = compiled._Workspace.grow

    def recording_grow(self: Any) -> bool:
        grown.append(self.size * 4)
        return grow(self)

    monkeypatch.setattr(compiled._Workspace, "grow", recording_grow)
    reader = ItemReader(writer_pst, compiled=True)
    try:
        kept = []
        for folder in list_folders(reader)[0]:
            for nid in folder.message_nids:
                reader.message(nid)
                kept.append(reader.compiled._work.size)
    finally:
        reader.close()
    assert max(grown) > 64 * 16 >= max(kept)


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pstfast import config
    from pstfast.errors import UsageError

    def compiled_reader(explicit: bool | None = None) -> bool:  # as a reading process decides
        return config.resolve_compiled_reader(config.compiled_reader_setting(explicit))

    monkeypatch.setenv("PSTFAST_COMPILED_READER", "0")
    assert compiled_reader() is False and compiled_reader(True) is True
    monkeypatch.setenv("PSTFAST_COMPILED_READER", "1")
    assert compiled_reader() is True and compiled_reader(False) is False
    monkeypatch.setenv("PSTFAST_COMPILED_READER", "auto")
    assert compiled_reader() is compiled.cache_ready()
    monkeypatch.setenv("PSTFAST_COMPILED_READER", "yes")
    with pytest.raises(UsageError, match="PSTFAST_COMPILED_READER='yes': choose 1, 0 or auto"):
        compiled_reader()


@pytest.mark.parametrize("setting", ["0", "1"])
def test_extract_output_is_the_same_either_way(writer_pst: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              setting: str) -> None:
    """The extract's output bytes do not depend on which path read the messages (one worker,
    in this process: the setting is read here); the manifest says which one ran."""
    import pstfast

    monkeypatch.setenv("PSTFAST_COMPILED_READER", setting)
    manifest = pstfast.extract(writer_pst, tmp_path / "out", workers=1, items_per_shard=64)
    assert {k: manifest.extra[k] for k in ("reader", "compiled_reader")} == {
        "reader": "pstfast", "compiled_reader": setting == "1"}
    monkeypatch.setenv("PSTFAST_COMPILED_READER", "1" if setting == "0" else "0")
    other = pstfast.extract(writer_pst, tmp_path / "other", workers=1, items_per_shard=64)
    assert other.extra["compiled_reader"] is (setting == "0")
    assert other.objects == manifest.objects and other.counts == manifest.counts


@pytest.mark.parametrize("setting", ["0", "1", "auto"])
def test_pool_workers_follow_the_setting(writer_pst: Path, tmp_path: Path, setting: str) -> None:
    """With a pool, the main process only plans and merges: it never loads numba (~0.7 s
    before any worker could start); the workers take the setting from it (their fork server's
    environment may be older), decide ``auto`` themselves and report which path they used."""
    script = (
        "import json, sys, pstfast\n"
        "if __name__ == '__main__':\n"
        "    m = pstfast.extract(sys.argv[1], sys.argv[2], workers=2, items_per_shard=64)\n"
        "    print(json.dumps({'extra': m.extra, 'numba': 'numba' in sys.modules}))\n"
    )
    env = {**os.environ, "PSTFAST_COMPILED_READER": setting}
    done = subprocess.run([sys.executable, "-c", script, str(writer_pst), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, check=True)
    found = json.loads(done.stdout)
    expected = {"0": False, "1": True, "auto": compiled.cache_ready()}[setting]
    assert {k: found["extra"][k] for k in ("reader", "compiled_reader")} == {"reader": "pstfast",
                                                                          "compiled_reader": expected}
    assert found["numba"] is (setting == "1")  # "1" makes sure it is compiled first, here


def test_workers_come_from_the_prestarted_fork_server(writer_pst: Path, tmp_path: Path) -> None:
    """``pool.prestart`` starts the preloading fork server at once, in the background, only
    when a pool will be used; the extract then forks its workers from that same server (no
    second one) and the server has loaded the worker code (numba's llvmlite among it) and
    what pyarrow's first conversion imports (pandas, when installed: ~0.4 s per worker)."""
    script = (
        "import json, sys\n"
        "from multiprocessing import forkserver\n"
        "from pstfast.extraction import pool\n"
        "if __name__ == '__main__':\n"
        "    alone = pool.prestart(1), forkserver._forkserver._forkserver_pid\n"
        "    started = pool.prestart(2), forkserver._forkserver._forkserver_pid\n"
        "    import pstfast\n"
        "    m = pstfast.extract(sys.argv[1], sys.argv[2], workers=2, items_per_shard=64)\n"
        "    pid = forkserver._forkserver._forkserver_pid\n"
        "    maps = open(f'/proc/{pid}/maps').read()\n"
        "    print(json.dumps({'alone': alone, 'started': started, 'pid': pid, 'workers': m.workers,\n"
        "                      'emails': m.counts['emails'], 'preloaded': 'llvmlite' in maps,\n"
        "                      'pandas': '/pandas/_libs/' in maps}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(writer_pst), str(tmp_path / "out")],
                          capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert found["alone"] == [False, None]  # one worker reads in-process: no server
    assert found["started"][0] is True and found["started"][1] == found["pid"]
    assert found["workers"] == 2 and found["emails"] > 400 and found["preloaded"]
    installed = importlib.util.find_spec("pandas") is not None
    assert found["pandas"] is installed


def test_warm_up_compiles_the_signature_readers_use(writer_pst: Path) -> None:
    """The fork server warms the reader up once: workers must then find exactly that
    compiled signature (another would make each worker compile for 15-60 s)."""
    assert compiled.warm_up() >= 0
    assert compiled.cache_ready()
    signatures = list(compiled._read_message.signatures)
    assert len(signatures) == 1
    for path in [writer_pst, *(CORPUS / name for name in PSTS)]:
        reader = ItemReader(path, compiled=True)
        try:
            for folder in list_folders(reader)[0]:
                for nid in folder.message_nids[:3]:
                    reader.message(nid)
        finally:
            reader.close()
    assert list(compiled._read_message.signatures) == signatures


def test_damage_below_the_message_is_reported_the_same(writer_pst: Path, tmp_path: Path) -> None:
    """A damaged attachment or recipient table spoils only that part of its message: the
    compiled path stops, and the Python reader records the part's problem and reads the rest."""
    from pstfast.pst.reader import PstReader

    data = bytearray(writer_pst.read_bytes())
    reader = ItemReader(writer_pst, compiled=False)
    folder = list_folders(reader)[0][-1]
    reader.close()
    with PstReader(writer_pst) as pst:
        with_attachment = [n for n in folder.message_nids if pst.attachments(pst.node(n))]
        first, second = with_attachment[0], folder.message_nids[-1]
        attachment = pst.attachments(pst.node(first))[0]
        table = pst.recipients_table(pst.node(second))
        assert table is not None and first != second
        for bid in (attachment.bid_data, table.bid_data):
            ib, _ = pst._bbt_lookup(bid, "test")
            data[ib + 4] ^= 0xFF  # the block's CRC no longer matches
    damaged = tmp_path / "parts.pst"
    damaged.write_bytes(bytes(data))
    python, _ = _read_all(damaged, False)
    fast, whole = _read_all(damaged, True)
    assert fast == python and whole == len(python) - 2
    problems = [m.problems for m in python if not isinstance(m, tuple) and m.problems]
    assert sorted(p[0][1] for p in problems) == ["attachment", "recipients"]


def test_warm_up_command() -> None:
    done = subprocess.run(["pstfast", "warm-up"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"pstfast warm-up: .* \(kernels \d+\.\d\d s, PST reader \d+\.\d\d s\)\n", done.stdout)
    assert compiled.cache_ready()


@pytest.fixture(scope="module")
def small_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[tuple[int, int, int]]]:
    pst = tmp_path_factory.mktemp("fuzz") / "s.pst"
    synth(pst, options=SynthOptions(messages=24, seed=5, embedded_rate=0.3, attachment_rate=0.6,
                                    large_attachment_every=0, large_body_every=6))
    data = pst.read_bytes()
    return data, blocks(data)


# derandomized so every CI run checks the same 300 cases; open-ended random damage is the fuzz harness's job
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.lists(st.tuples(st.integers(0, 1 << 40), st.integers(1, 255)), min_size=1, max_size=3))
def test_damage_behind_valid_checksums_reads_the_same(small_pst: tuple[bytes, list[tuple[int, int, int]]],
                                                      tmp_path: Path, damage: list[tuple[int, int]]) -> None:
    """Bytes changed inside blocks whose CRCs are then fixed: the damage reaches the heap,
    BTH, table and subnode parsers themselves. Whatever they make of it, the compiled path
    must agree with the Python reader (stop where it stops, read what it reads) and never
    read outside its arrays."""
    data, all_blocks = small_pst
    damaged = bytearray(data)
    for where, xor in damage:
        bid, ib, cb = all_blocks[where % len(all_blocks)]
        offset = (where // len(all_blocks)) % cb
        content = bytearray(damaged[ib:ib + cb])
        content[offset] ^= xor
        rewrite_block(damaged, ib, cb, bytes(content))
    path = tmp_path / "fuzzed.pst"
    path.write_bytes(bytes(damaged))
    try:
        python, _ = _read_all(path, False)
    except Exception as exc:  # the folders themselves are unreadable: so must they be with the compiled path
        with pytest.raises(type(exc)):
            _read_all(path, True)
        return
    fast, _ = _read_all(path, True)
    assert fast == python
