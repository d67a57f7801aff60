"""Shard planning: split one PST into units of roughly equal work, from the PST alone.

The plan depends only on the folder item counts (never on the worker count), so the
same PST always gives the same shards, and output merged in shard order is identical
whatever the number of workers. Small folders are grouped into one shard; a big folder
is split into item index ranges. The last TAPER_SHARDS shards' worth of items is cut into
quarter-size shards: the workers then finish closer together (a worker left alone with a
full shard at the end is time the other cores sit idle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .items import FolderInfo

MIN_SHARD_ITEMS = 64
MAX_SHARD_ITEMS = 512  # bounds a worker's memory (a shard's rows wait in it), whatever the PST size
TARGET_SHARDS = 32
TAPER_SHARDS = 2


@dataclass(frozen=True)
class Slice:
    """Items ``start..start+len(nids)-1`` of one folder: their node ids, in folder order."""

    folder_path: str
    folder_nid: int
    start: int
    nids: tuple[int, ...]

    @property
    def items(self) -> int:
        return len(self.nids)


@dataclass(frozen=True)
class Shard:
    """One unit of work for a worker: consecutive folder slices, in PST order."""

    index: int
    slices: tuple[Slice, ...]

    @property
    def items(self) -> int:
        return sum(s.items for s in self.slices)


def shard_size(total_items: int) -> int:
    """Items per shard for a PST of *total_items*: ~TARGET_SHARDS shards, clamped."""
    return max(MIN_SHARD_ITEMS, min(MAX_SHARD_ITEMS, math.ceil(total_items / TARGET_SHARDS)))


def plan_shards(folders: Sequence[FolderInfo], items_per_shard: int | None = None) -> list[Shard]:
    """Cut the folders (in depth-first order) into shards of about *items_per_shard* items,
    the last ``TAPER_SHARDS * items_per_shard`` items into shards a quarter that size."""
    total = sum(f.item_count for f in folders)
    size = items_per_shard or shard_size(total)
    taper_from = total - TAPER_SHARDS * size
    shards: list[Shard] = []
    current: list[Slice] = []
    done = filled = 0
    for folder in folders:
        start = 0
        while start < folder.item_count:
            target = size if done < taper_from else max(1, size // 4)
            take = min(folder.item_count - start, target - filled)
            current.append(Slice(folder.folder_path, folder.node_id, start, folder.message_nids[start:start + take]))
            filled += take
            start += take
            if filled >= target:
                shards.append(Shard(len(shards), tuple(current)))
                done += filled
                current, filled = [], 0
    if current:
        shards.append(Shard(len(shards), tuple(current)))
    return shards


def summary(shards: Sequence[Shard]) -> dict[str, int]:
    """A short description of a plan for the manifest."""
    sizes = [s.items for s in shards] or [0]
    split: dict[int, int] = {}
    for shard in shards:
        for sl in shard.slices:
            split.setdefault(sl.folder_nid, 0)
            split[sl.folder_nid] += 1
    return {
        "count": len(shards),
        "items_min": min(sizes),
        "items_max": max(sizes),
        "folders_split": sum(1 for n in split.values() if n > 1),
    }
