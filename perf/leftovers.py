"""What benchmark rounds leave behind: moved aside at once, deleted when the session ends.

Deleting a round's output just before the next round makes that round slower, for reasons
that have nothing to do with the code measured: ext4 without a journal (these VMs' root
filesystem) will not reuse an inode freed in the last ~30 s, and while allocating a new one
it checks every such inode of the block group, one by one (``find_inode_bit`` ->
``recently_deleted``). A round creating 10,000-20,000 files right after as many were
deleted spent up to ~0.1 ms of kernel time per file creation (seen with ``perf``), seconds
in all, and more for the tool writing more files (readpst). A rename costs nothing; the
files go when the session is over. When the disk runs short, a leftover is deleted at once.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

#: below this much free space, leftovers are deleted at once instead of kept to the end
MIN_FREE_BYTES = 10 * 1024**3
_kept: list[Path] = []


def set_aside(*paths: Path) -> None:
    """Move each existing *path* out of the way (into ``.leftovers`` next to it)."""
    for path in paths:
        if not path.exists():
            continue
        if shutil.disk_usage(path.parent).free < MIN_FREE_BYTES:
            shutil.rmtree(path, ignore_errors=True)
            continue
        bin_ = path.parent / ".leftovers"
        bin_.mkdir(exist_ok=True)
        path.rename(bin_ / uuid.uuid4().hex)
        if bin_ not in _kept:
            _kept.append(bin_)


def delete_all() -> None:
    """Delete everything set aside (the session's last step)."""
    while _kept:
        shutil.rmtree(_kept.pop(), ignore_errors=True)
