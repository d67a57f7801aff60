"""The shard planner: boundaries derived by hand from the rules in ``pstfast.extraction.plan``."""

from __future__ import annotations

from pstfast.extraction.plan import MAX_SHARD_ITEMS, plan_shards, shard_size, summary
from pstfast.extraction.items import FolderInfo


def _folders(*counts: int) -> list[FolderInfo]:
    nid = 0x100
    out = []
    for i, count in enumerate(counts):
        out.append(FolderInfo(f"F{i}", 0x8000 + i, tuple(range(nid, nid + count))))
        nid += count
    return out


def test_shards_cover_every_item_once_in_order_and_taper_at_the_end() -> None:
    folders = _folders(1000, 300)
    shards = plan_shards(folders, items_per_shard=128)
    # 1300 items; the last 2 x 128 = 256 start tapering once 1044 items are in whole shards:
    # 8 shards reach 1024 (< 1044), a 9th full one reaches 1152, the 148 left go in quarters
    assert [s.items for s in shards] == [128] * 9 + [32, 32, 32, 32, 20]
    assert [s.index for s in shards] == list(range(14))
    flat = [(sl.folder_path, i, nid) for s in shards for sl in s.slices for i, nid in enumerate(sl.nids, sl.start)]
    expected = [(f.folder_path, i, nid) for f in folders for i, nid in enumerate(f.message_nids)]
    assert flat == expected
    # the 8th shard joins the end of the first folder and the start of the second
    assert [(sl.folder_path, sl.start, sl.items) for sl in shards[7].slices] == [("F0", 896, 104), ("F1", 0, 24)]
    assert summary(shards) == {"count": 14, "items_min": 20, "items_max": 128, "folders_split": 2}


def test_shard_size_is_clamped() -> None:
    assert shard_size(100) == 64
    assert shard_size(20_000) == MAX_SHARD_ITEMS
    assert shard_size(3_200) == 100


def test_one_item_shards_and_empty_input() -> None:
    assert [s.items for s in plan_shards(_folders(3, 0, 2), items_per_shard=1)] == [1] * 5
    assert plan_shards(_folders(0)) == []
