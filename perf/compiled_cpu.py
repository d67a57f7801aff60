"""CPU time of the compiled PST reader alone: ``python perf/compiled_cpu.py PST [PASSES]``.

Reads every message of every folder of *PST* with :class:`pstfast.pst.compiled.CompiledReader`
(the properties the extract reads), *PASSES* times (default 8), and prints the best pass's
CPU time (``time.process_time``, less sensitive to other processes than wall time). Run it
for two checkouts in turn (``PYTHONPATH`` picks the pstfast it imports) to compare them side by side.
"""

from __future__ import annotations

import sys
import time

from pstfast.extraction.items import READ_PROPERTIES
from pstfast.pst.compiled import CompiledReader, warm_up
from pstfast.pst.props import NID_ROOT_FOLDER, NID_TYPE_CONTENTS_TABLE, NID_TYPE_HIERARCHY_TABLE, NID_TYPE_NORMAL_FOLDER
from pstfast.pst.reader import PstReader


def main(argv: list[str]) -> None:
    path, passes = argv[0], int(argv[1]) if len(argv) > 1 else 8
    warm_up()
    with PstReader(path) as reader:
        nids: list[int] = []
        stack = [NID_ROOT_FOLDER]
        while stack:
            folder = stack.pop()
            nids += reader.row_ids(reader.node((folder & ~0x1F) | NID_TYPE_CONTENTS_TABLE))
            stack += [c for c in reader.row_ids(reader.node((folder & ~0x1F) | NID_TYPE_HIERARCHY_TABLE))
                      if c & 0x1F == NID_TYPE_NORMAL_FOLDER]
        compiled = CompiledReader(reader, READ_PROPERTIES)
        try:
            best = float("inf")
            for _ in range(passes):
                started = time.process_time()
                for nid in nids:
                    if compiled.message(nid) is None:
                        raise SystemExit(f"message 0x{nid:X}: the compiled path fell back")
                best = min(best, time.process_time() - started)
        finally:
            compiled.close()
    print(f"{len(nids)} messages: best {best:.3f} s CPU, {best / len(nids) * 1e6:.1f} us/message")


if __name__ == "__main__":
    main(sys.argv[1:])
