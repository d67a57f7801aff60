"""The PST writer: every file it writes must read back, in libpff and in readpst, as its truth."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pstfast.synthetic.damage import _pages, damage
from pstfast.errors import CorruptPstError, UsageError
from pstfast.pst.peers import libpff_summary, readpst_summary
from pstfast.synthetic.corpus import SynthOptions, synth

sys.path.insert(0, str(Path(__file__).parent))
import pffread  # noqa: E402

needs_readpst = pytest.mark.skipif(shutil.which("readpst") is None, reason="readpst (apt-get install pst-utils) missing")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _truth_counts(truth: dict, *, readpst: bool = False) -> dict[str, tuple[int, int]]:
    """(messages, attachments) per folder; *readpst*: without by-reference attachments,
    for which readpst writes no file, without tasks and distribution lists, which it does
    not write (``-S``), and without a recurring series' exceptions, which it folds into
    the series' VEVENT."""
    counts: dict[str, list[int]] = {f["path"]: [0, 0] for f in truth["folders"]}
    for m in truth["messages"]:
        if readpst and m["message_class"] in ("IPM.Task", "IPM.DistList"):
            continue
        counts[m["folder_path"]][0] += 1
        counts[m["folder_path"]][1] += sum(1 for a in m["attachments"]
                                           if not (readpst and (a["method"] == "reference" or a.get("exception"))))
    return {path: (n, a) for path, (n, a) in counts.items()}


@pytest.fixture(scope="module")
def pst2000(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("synth2000")
    result = synth(folder / "s.pst", options=SynthOptions(messages=2000, seed=1), truth=folder / "s.json")
    return result.path, json.loads((folder / "s.json").read_text(encoding="utf-8"))


def test_truth_is_self_consistent(pst2000: tuple[Path, dict]) -> None:
    _, truth = pst2000
    keys = [m["key"] for m in truth["messages"]]
    assert len(keys) == len(set(keys))
    assert sum(f["message_count"] for f in truth["folders"]) == len(keys)
    assert sorted(k for ks in truth["threads"].values() for k in ks) == sorted(keys)
    assert truth["duplicate_groups"], "duplicates are planted"
    for group in truth["duplicate_groups"].values():
        a, b = (next(m for m in truth["messages"] if m["key"] == k) for k in group)
        assert a["folder_path"] != b["folder_path"]
        assert {k: v for k, v in a.items() if k not in ("key", "nid", "folder_path")} == {
            k: v for k, v in b.items() if k not in ("key", "nid", "folder_path")
        }
    no_id = sum(1 for m in truth["messages"] if m["internet_message_id"] is None)
    assert 0.01 * len(keys) < no_id < 0.15 * len(keys)
    # replies point at a message of their own thread
    by_id = {m["internet_message_id"]: m for m in truth["messages"] if m["internet_message_id"]}
    replies = [m for m in truth["messages"] if m["in_reply_to"]]
    assert len(replies) > len(keys) // 4
    for m in replies:
        assert by_id[m["in_reply_to"]]["thread"] == m["thread"]
        assert m["references"][-1] == m["in_reply_to"]
        assert m["conversation_index"].startswith(by_id[m["in_reply_to"]]["conversation_index"])
    kinds = collections.Counter(a["method"] for m in truth["messages"] for a in m["attachments"])
    assert kinds["by_value"] and kinds["embedded_message"] and kinds["ole"] and kinds["reference"]
    # bodies stored as real mailboxes store them, in shares near the options'
    shapes = collections.Counter(
        "html-only" if m["body_html"] and m["body_text"] is None
        else "html-in-rtf" if m["expected_body_text_source"] == "html" and m["body_rtf"]
        else "rtf-only" if m["expected_body_text_source"] == "rtf" else "plain+html"
        for m in truth["messages"])
    n = len(truth["messages"])
    assert 0.10 < shapes["html-only"] / n < 0.20 and shapes["html-in-rtf"] and shapes["rtf-only"], shapes
    assert any(a["is_inline"] and a["content_id"] for m in truth["messages"] for a in m["attachments"])
    assert any((a["size"] or 0) > 1_000_000 for m in truth["messages"] for a in m["attachments"])
    shas = collections.Counter(a["sha256"] for m in truth["messages"] for a in m["attachments"] if a["sha256"])
    assert shas.most_common(1)[0][1] > 2, "some attachment bytes recur across messages"
    assert any(not f["path"].isascii() for f in truth["folders"])
    assert any(not m["subject"].isascii() for m in truth["messages"])


def test_libpff_counts_equal_truth(pst2000: tuple[Path, dict]) -> None:
    path, truth = pst2000
    summary = libpff_summary(path)
    assert {f.path: (f.messages, f.attachments) for f in summary.folders} == _truth_counts(truth)


@needs_readpst
def test_readpst_counts_equal_truth(pst2000: tuple[Path, dict]) -> None:
    path, truth = pst2000
    seen = {p: (f.messages, f.attachments) for p, f in readpst_summary(path).by_subtree_path().items()}
    expected = {p.partition("/")[2]: c for p, c in _truth_counts(truth, readpst=True).items()}
    # readpst writes nothing for an empty folder
    assert {p: c for p, c in seen.items() if c != (0, 0)} == {p: c for p, c in expected.items() if c != (0, 0)}


def _stored(entry: dict) -> dict:
    """A truth address as the item stores it: no SMTP address where the writer left it out."""
    return {**entry, "email": entry["email"] if entry["smtp_known"] else None}


def _compare(got: dict, want: dict) -> list[str]:
    problems = []
    for key, value in got.items():
        expected = want.get(key)
        if key in ("to", "cc", "bcc"):
            expected = [_stored(e) for e in expected]
        elif key == "sender_email" and not want["sender_smtp_known"]:
            expected = None
        if key == "attachments":
            if len(value) != len(expected):
                problems.append(f"{want['key']}: {len(value)} attachments, truth {len(expected)}")
            for g, w in zip(value, expected):
                problems += [f"{want['key']} attachment {g['ordinal']} {k}: {v!r} != {w[k]!r}" for k, v in g.items() if v != w[k]]
        elif value != expected:
            problems.append(f"{want['key']} {key}: {str(value)[:60]!r} != {str(expected)[:60]!r}")
    return problems


def test_every_field_of_every_message_equals_truth(pst2000: tuple[Path, dict]) -> None:
    path, truth = pst2000
    by_nid = {m["nid"]: m for m in truth["messages"]}
    problems = []
    seen = 0
    for folder_path, item in pffread.walk(str(path)):
        got = pffread.message(item)
        want = by_nid[got["nid"]]
        assert folder_path == want["folder_path"]
        problems += _compare(got, want)
        seen += 1
    assert seen == len(truth["messages"])
    assert not problems, "\n".join(problems[:20])
    assert max(len(m["body_text"] or "") for m in truth["messages"]) * 2 > 8176 * 4, "some bodies need data trees"


def test_btrees_are_multilevel_and_tables_spill_into_subnodes(pst2000: tuple[Path, dict]) -> None:
    path, truth = pst2000
    data = path.read_bytes()
    nbt_ib, bbt_ib = struct.unpack_from("<Q", data, 224)[0], struct.unpack_from("<Q", data, 240)[0]
    assert next(_pages(data, nbt_ib)).level >= 2
    assert next(_pages(data, bbt_ib)).level >= 2
    leaves = [e for p in _pages(data, nbt_ib) if p.level == 0 for e in p.entries]
    nodes = {struct.unpack_from("<Q", e)[0]: struct.unpack("<QQQII", e) for e in leaves}
    biggest = max(truth["folders"], key=lambda f: f["message_count"])
    folder_nid = next(m["nid"] for m in truth["messages"] if m["folder_path"] == biggest["path"])
    parent = nodes[folder_nid][3]
    contents_table = (parent & ~0x1F) | 0x0E
    assert nodes[contents_table][2] != 0, "a big contents table keeps its rows in a subnode"


@pytest.mark.parametrize("by_folder", [False, True])
def test_message_ids_in_arrival_or_reverse_folder_walk_order(tmp_path: Path, by_folder: bool) -> None:
    """By default message node ids interleave across folders as they arrive (Outlook's way);
    with ids_by_folder a folder's messages come before those of every folder earlier in
    libpff's walk (from the root, depth first, children by node id), the order in which
    libpff looks for each node's parent: opening a big file is then linear, not quadratic."""
    options = SynthOptions(messages=600, seed=3, folders=12, ids_by_folder=by_folder)
    path = synth(tmp_path / "ids.pst", options=options, truth=tmp_path / "ids.json").path
    truth = json.loads((tmp_path / "ids.json").read_text(encoding="utf-8"))
    data = path.read_bytes()
    nbt_ib = struct.unpack_from("<Q", data, 224)[0]
    nodes = [struct.unpack("<QQQII", e) for p in _pages(data, nbt_ib) if p.level == 0 for e in p.entries]
    children: dict[int, list[int]] = collections.defaultdict(list)
    for nid, _, _, parent, _ in nodes:
        if nid & 0x1F == 0x02 and nid != parent:  # normal folders (the root is its own parent)
            children[parent].append(nid)
    walk, stack = [], [0x122]
    while stack:
        walk.append(stack.pop())
        stack.extend(sorted(children[walk[-1]], reverse=True))
    position = {nid: i for i, nid in enumerate(walk)}
    filed = [position[parent] for nid, _, _, parent, _ in sorted(nodes) if nid & 0x1F == 0x04]
    assert len(filed) == len(truth["messages"])
    assert len(set(filed)) == len({m["folder_path"] for m in truth["messages"]}) > 5
    assert (filed == sorted(filed, reverse=True)) is by_folder
    # both readers take either order: every field in libpff, the counts in readpst
    by_nid = {m["nid"]: m for m in truth["messages"]}
    problems = [p for _, item in pffread.walk(str(path))
                for p in _compare(pffread.message(item), by_nid.pop(item.identifier))]
    assert not problems and not by_nid, problems[:10]
    if shutil.which("readpst"):
        seen = {p: (f.messages, f.attachments) for p, f in readpst_summary(path).by_subtree_path().items()}
        assert {p: c for p, c in seen.items() if c != (0, 0)} == {
            p.partition("/")[2]: c for p, c in _truth_counts(truth, readpst=True).items() if c != (0, 0)}


def test_ids_by_folder_with_a_folder_made_after_the_first_message(tmp_path: Path) -> None:
    """Blocks are planned at the first message; a folder made later takes ids from the
    spill block, and both readers still file every message where it was added."""
    import datetime as dt

    from pstfast.pst.write.messaging import Message, PstWriter

    when = dt.datetime(2021, 3, 4, 5, 6, 7)
    path = tmp_path / "late.pst"
    with PstWriter(path, ids_by_folder=True) as pst:
        early = pst.add_folder(pst.ipm_subtree, "Early")
        early_ids, late_ids = [], []
        for i in range(6):
            early_ids.append(pst.add_message(early, Message(f"early {i}", "A", "a@example.com", when, when)))
            if i == 2:
                late = pst.add_folder(early, "Late")
            if i >= 2:
                late_ids.append(pst.add_message(late, Message(f"late {i}", "B", "b@example.com", when, when)))
    filed = collections.defaultdict(list)
    for folder_path, item in pffread.walk(str(path)):
        filed[folder_path].append(item.subject)
    assert filed == {"Top of Personal Folders/Early": [f"early {i}" for i in range(6)],
                     "Top of Personal Folders/Early/Late": [f"late {i}" for i in range(2, 6)]}
    assert min(late_ids) > max(early_ids)  # the spill block is the last one
    if shutil.which("readpst"):
        seen = {p: f.messages for p, f in readpst_summary(path).by_subtree_path().items() if f.messages}
        assert seen == {"Early": 6, "Early/Late": 4}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = synth(tmp_path / "a.pst", options=SynthOptions(messages=300, seed=7))
    b = synth(tmp_path / "b.pst", options=SynthOptions(messages=300, seed=7))
    c = synth(tmp_path / "c.pst", options=SynthOptions(messages=300, seed=8))
    assert _sha256(a.path) == _sha256(b.path)
    assert _sha256(a.path) != _sha256(c.path)
    subjects = lambda p: sorted(pffread.message(m)["subject"] for _, m in pffread.walk(str(p)))  # noqa: E731
    assert subjects(a.path) != subjects(c.path)


@pytest.mark.slow
@needs_readpst
def test_50k_messages_sample(tmp_path: Path) -> None:
    # node ids by folder: libpff opens it in ~0.2 s, not ~20 s (the test took 2.5 min); the
    # only difference, the node ids, is covered by the test above at a smaller size
    options = SynthOptions(messages=50_000, seed=5, attachment_rate=0.05, large_attachment_every=0, body_kib=1,
                           large_body_every=0, ids_by_folder=True, rtf_html_rate=0, rtf_only_rate=0)
    result = synth(tmp_path / "big.pst", options=options, truth=tmp_path / "big.json")
    truth = json.loads((tmp_path / "big.json").read_text(encoding="utf-8"))
    expected = _truth_counts(truth)
    by_nid = {m["nid"]: m for m in truth["messages"]}
    sample = set(random.Random(0).sample(sorted(by_nid), 500))
    # one libpff pass: counts for every folder, every field for the sampled messages
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    problems = []
    for folder_path, item in pffread.walk(str(result.path)):
        counts[folder_path][0] += 1
        counts[folder_path][1] += item.number_of_attachments
        if item.identifier in sample:
            problems += _compare(pffread.message(item), by_nid[item.identifier])
            sample.discard(item.identifier)
    assert not sample and not problems, problems[:10]
    assert {p: tuple(c) for p, c in counts.items()} == {p: c for p, c in expected.items() if c[0]}
    seen = {p: (f.messages, f.attachments) for p, f in readpst_summary(result.path).by_subtree_path().items()}
    assert {p: c for p, c in seen.items() if c != (0, 0)} == {
        p.partition("/")[2]: c for p, c in _truth_counts(truth, readpst=True).items() if c != (0, 0)
    }


# --- damaged variants ------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged(pst2000: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {v.kind: v for v in damage(pst2000[0], tmp_path_factory.mktemp("damaged"))}


def _unreadable(path: Path) -> int:
    """How many messages libpff lists but cannot read."""
    import pypff

    handle = pypff.file()
    handle.open(str(path))
    bad = 0
    stack = [handle.get_root_folder()]
    while stack:
        folder = stack.pop()
        for i in range(folder.number_of_sub_messages):
            try:
                item = folder.get_sub_message(i)
                item.subject, item.plain_text_body  # noqa: B018
            except OSError:
                bad += 1
        stack.extend(folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders))
    handle.close()
    return bad


def _readpst_skipped(path: Path, tmp: Path) -> int:
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run(["readpst", "-j", "0", "-D", "-S", "-o", str(tmp), str(path)], capture_output=True,
                          text=True, errors="replace", check=False)
    return sum(int(line.split(" items skipped")[0].rsplit(", ", 1)[1]) for line in proc.stdout.splitlines()
               if "items skipped" in line)


def test_truncated_fails_as_a_file(damaged: dict) -> None:
    with pytest.raises(CorruptPstError, match="libpff cannot open it"):
        libpff_summary(damaged["truncated"].path)


@needs_readpst
def test_flipped_block_loses_exactly_one_message(damaged: dict, pst2000: tuple[Path, dict], tmp_path: Path) -> None:
    variant = damaged["flipped_block"]
    assert _unreadable(variant.path) == 1
    # readpst -S skips the tasks and distribution lists of the intact file as well
    assert _readpst_skipped(variant.path, tmp_path / "d") - _readpst_skipped(pst2000[0], tmp_path / "o") == 1


@needs_readpst
def test_broken_btree_loses_exactly_its_page(damaged: dict, pst2000: tuple[Path, dict], tmp_path: Path) -> None:
    variant = damaged["broken_btree"]
    lost = len(variant.details["nids"])
    assert lost > 1
    assert _unreadable(variant.path) == lost
    assert _readpst_skipped(variant.path, tmp_path / "d") - _readpst_skipped(pst2000[0], tmp_path / "o") == lost


# --- the public corpus through the same helpers -----------------------------------------

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "public"
# (items libpff lists, of which non-message items, attachments) from the corpus README
CORPUS_COUNTS = {
    "pstsdk-sample1.pst": (1, 0, 1),
    "pstsdk-sample2.pst": (1, 0, 1),
    "pstsdk-submessage.pst": (1, 0, 1),
    "pstsdk-test_ansi.pst": (1, 0, 0),
    "pstsdk-test_unicode.pst": (2, 0, 0),
    "libpst-dist-list.pst": (4, 1, 2),
    "libpst-passworded.pst": (3, 1, 0),
    "hiraoka-contacts.pst": (1, 0, 0),
}


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"public corpus not found at {CORPUS} (it lives in ../shared)")
@pytest.mark.parametrize("name", sorted(CORPUS_COUNTS))
def test_corpus_counts_through_the_reading_helpers(name: str) -> None:
    items, _, attachments = CORPUS_COUNTS[name]
    summary = libpff_summary(CORPUS / name)
    assert (summary.messages, summary.attachments) == (items, attachments)
    if shutil.which("readpst"):
        # readpst opens every corpus file; it skips some items libpff lists (it writes
        # only what it can render), so it can only report as many or fewer
        theirs = readpst_summary(CORPUS / name)
        assert theirs.messages <= summary.messages
    if name == "hiraoka-contacts.pst":
        assert any("連絡先" in f.path for f in summary.folders)


# --- the command line --------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pstfast.cli", *args], capture_output=True, text=True, check=False)


def test_cli_synth_writes_truth_and_damaged_variants(tmp_path: Path) -> None:
    proc = _cli("dev", "synth", str(tmp_path / "x.pst"), "--messages", "40", "--seed", "3",
                "--truth", str(tmp_path / "x.json"), "--damaged", str(tmp_path / "bad"))
    assert proc.returncode == 0, proc.stderr
    assert "40 messages" in proc.stdout or "41 messages" in proc.stdout or "messages in" in proc.stdout
    truth = json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))
    assert len(truth["messages"]) >= 40
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == [
        "x.broken_btree.pst", "x.flipped_block.pst", "x.truncated.pst"
    ]
    by_folder = _cli("dev", "synth", str(tmp_path / "y.pst"), "--messages", "40", "--seed", "3", "--ids-by-folder")
    assert by_folder.returncode == 0, by_folder.stderr
    # the same messages, other node ids: not the same bytes
    assert libpff_summary(tmp_path / "y.pst").folders == libpff_summary(tmp_path / "x.pst").folders
    assert _sha256(tmp_path / "y.pst") != _sha256(tmp_path / "x.pst")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--messages", "-5"], "must be 0 or more"),
        (["--folders", "0"], "must be 1 or more"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = _cli("dev", "synth", str(tmp_path / "x.pst"), *args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unwritable_path_exits_2(tmp_path: Path) -> None:
    proc = _cli("dev", "synth", str(tmp_path / "missing" / "x.pst"), "--messages", "5")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr
    proc = _cli("dev", "synth", str(tmp_path), "--messages", "5")
    assert proc.returncode == 2 and "it is a folder" in proc.stderr


def test_options_validation() -> None:
    with pytest.raises(UsageError):
        SynthOptions(attachment_rate=1.5).validate()


def test_a_family_in_teams_keeps_threads_within_a_team_or_two(tmp_path: Path) -> None:
    """--team-size: a thread's copies sit in the mailboxes of one team (and of at most one
    person from another), so a PST touches the threads of its team, not of the whole org."""
    from pstfast.synthetic.corpus import synth_family

    fam = synth_family(tmp_path / "f", 12, options=SynthOptions(messages=600, seed=4), truth=tmp_path / "t.json",
                       team_size=4)
    truth = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    team_of = {f"custodian-{i + 1:03d}": i // 4 for i in range(12)}
    holders: dict[str, set[str]] = collections.defaultdict(set)
    for m in truth["messages"]:
        if not m["forward"]:  # a forward starts a thread of its own with the original inside
            holders[m["thread"]].update(m["custodians"])
    assert len(holders) > 50
    for custodians in holders.values():
        teams = collections.Counter(team_of[c] for c in custodians)
        assert len(teams) <= 2 and (len(teams) == 1 or min(teams.values()) == 1), teams
    assert max(len(c) for c in holders.values()) <= 5 and len(fam.paths) == 12
