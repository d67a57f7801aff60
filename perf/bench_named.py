"""What reading named properties costs the extract: before / after issue 20, side by side.

One writer PST (``pstfast dev synth``'s default mix: 95 % mail, 5 % appointments,
contacts, lists, tasks and drafts) is extracted, interleaved round by round, by:

* ``before``: pstfast at ``--before`` (default: the commit this branch started from),
  exported with ``git archive`` into a temporary folder and imported from there;
* ``after_unnamed``: this checkout with the name-to-id map left unread (the named fields
  stay empty: no named property is read or resolved);
* ``after``: this checkout as it ships.

Each run is its own process (``PSTFAST_COMPILED_READER=1``, after a warm-up run per
variant that compiles or loads the reader), timing ``pstfast.extract`` inside it; the
medians are printed as a Markdown table. ``after`` vs ``after_unnamed`` is the cost of the
named properties themselves; ``after`` vs ``before`` also holds the new columns, the
folders output and item_properties.

``--in-process`` measures instead what reading every item costs one process in CPU
seconds (``time.process_time``, the compiled reader, no output written), with the file's
named properties resolved and read or not: steadier than wall time on a shared machine.

Run: ``python perf/bench_named.py --messages 20000 --rounds 5 --workers 1,2`` (or
``--in-process --rounds 7``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "8c78c77"  # main when issue 20 (named properties) started

_RUN = r"""
import json, sys, time, shutil
import pstfast
if sys.argv[4] == "unnamed":
    from pstfast.extraction.items import ItemReader
    ItemReader._named_properties = lambda self: {}
out = sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
t = time.perf_counter()
manifest = pstfast.extract(sys.argv[1], out, pst_file_id="bench", workers=int(sys.argv[3]), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "emails": manifest.counts["emails"],
                  "extract": manifest.timings["extract"], "module": pstfast.__file__,
                  "compiled": manifest.extra.get("compiled_reader")}))
"""


def _export(commit: str, into: Path) -> Path:
    """The package at *commit* as plain files (no worktree)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "pstfast"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _run(variant: str, pst: Path, out: Path, workers: int, before: Path) -> dict[str, float]:
    env = dict(os.environ, PSTFAST_COMPILED_READER="1")
    if variant == "before":
        env["PYTHONPATH"] = str(before)
    mode = "unnamed" if variant == "after_unnamed" else "named"
    # cwd: not the checkout (``python -c`` puts the working folder first on sys.path)
    proc = subprocess.run([sys.executable, "-c", _RUN, str(pst), str(out), str(workers), mode], env=env,
                          capture_output=True, text=True, check=True, cwd=out.parent)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    expected_root = before if variant == "before" else ROOT
    if not str(result["module"]).startswith(str(expected_root)):  # type: ignore[arg-type]
        raise RuntimeError(f"{variant} imported {result['module']}")
    return result


def _read_cpu(pst: Path, named: bool) -> float:
    """CPU seconds to read every item of *pst* in this process (compiled reader)."""
    from pstfast.extraction.items import READ_PROPERTIES, ItemReader, list_folders
    from pstfast.pst.compiled import CompiledReader

    reader = ItemReader(pst, compiled=True)
    try:
        if not named:  # as if the file had no name-to-id map: no named property read or resolved
            assert reader.compiled is not None
            reader.compiled.close()
            reader.named, reader.wanted = {}, READ_PROPERTIES
            reader.compiled = CompiledReader(reader.pst, READ_PROPERTIES)
        folders, _ = list_folders(reader)
        started = time.process_time()
        for folder in folders:
            for nid in folder.message_nids:
                reader.read(reader.message(nid))
        return time.process_time() - started
    finally:
        reader.close()


def in_process(pst: Path, rounds: int) -> None:
    """Print the medians of :func:`_read_cpu` with and without named properties, interleaved."""
    _read_cpu(pst, True), _read_cpu(pst, False)  # warm: numba's cache, the page cache
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for named in (False, True):
            times[named].append(_read_cpu(pst, named))
    unnamed, named = statistics.median(times[False]), statistics.median(times[True])
    print(f"read every item, one process, CPU s, {rounds} rounds interleaved, medians: "
          f"unnamed {unnamed:.3f}, named {named:.3f} ({named / unnamed - 1:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--before", default=BASE)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from pstfast.synthetic.corpus import SynthOptions, synth

    if args.in_process:
        with tempfile.TemporaryDirectory(prefix="pstfast-bench-named-") as tmp:
            in_process(synth(Path(tmp) / "bench.pst", options=SynthOptions(messages=args.messages, seed=1)).path,
                       args.rounds)
        return

    variants = ("before", "after_unnamed", "after")
    with tempfile.TemporaryDirectory(prefix="pstfast-bench-named-") as tmp:
        work = Path(tmp)
        before = _export(args.before, work / "before")
        pst = synth(work / "bench.pst", options=SynthOptions(messages=args.messages, seed=1)).path
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            for variant in variants:  # warm-up: numba's cache for each tree, the file in the page cache
                _run(variant, pst, work / "out", workers, before)
            times: dict[str, list[float]] = {v: [] for v in variants}
            emails: dict[str, float] = {}
            for _ in range(args.rounds):
                for variant in variants:
                    result = _run(variant, pst, work / "out", workers, before)
                    times[variant].append(result["seconds"])
                    emails[variant] = result["emails"]
            medians = {v: statistics.median(t) for v, t in times.items()}
            for variant in variants:
                rows.append((workers, variant, medians[variant], emails[variant],
                             medians[variant] / medians["before"] - 1, medians[variant] / medians["after_unnamed"] - 1))
        print(f"{args.messages} messages ({pst.stat().st_size / 1e6:.0f} MB), {args.rounds} rounds interleaved, medians")
        print("| workers | variant | seconds | rows | rows/s | vs before | vs after_unnamed |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for workers, variant, seconds, count, vs_before, vs_unnamed in rows:
            print(f"| {workers} | {variant} | {seconds:.2f} | {count:.0f} | {count / seconds:,.0f} | "
                  f"{vs_before:+.1%} | {vs_unnamed:+.1%} |")


if __name__ == "__main__":
    main()
