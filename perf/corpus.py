"""The benchmark corpus: writer-made PSTs, seeded and cached on disk.

A PST of N messages with seed S is written once by :func:`pstfast.synthetic.corpus.synth` into the
cache folder (``PSTFAST_PERF_CACHE``, default ``~/.cache/pstfast/perf``) and reused by every
later run, so reruns measure pstfast, not the writer. The file name carries the writer's
options, so changing them writes a new file instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

#: default sizes of the end-to-end benchmarks (messages); ``PSTFAST_PERF_SIZES`` overrides
DEFAULT_SIZES = (20_000, 100_000)
SEED = 7


def cache_dir() -> Path:
    """Where cached PSTs live: ``PSTFAST_PERF_CACHE`` or ``~/.cache/pstfast/perf``."""
    value = os.environ.get("PSTFAST_PERF_CACHE")
    return Path(value) if value else Path.home() / ".cache" / "pstfast" / "perf"


def sizes(default: tuple[int, ...] = DEFAULT_SIZES) -> list[int]:
    """The PST sizes to benchmark: ``PSTFAST_PERF_SIZES`` ("20000,100000") or *default*."""
    value = os.environ.get("PSTFAST_PERF_SIZES")
    return [int(x) for x in value.split(",") if x.strip()] if value else list(default)


@dataclass(frozen=True)
class BenchPst:
    """A cached benchmark PST and what the writer says is in it."""

    path: Path
    messages: int  # top-level messages (the writer's count)
    attachments: int  # top-level attachments
    size_bytes: int
    seed: int

    @property
    def mb(self) -> float:
        return self.size_bytes / 1e6


def bench_pst(messages: int, seed: int = SEED, *, folder: Path | None = None) -> BenchPst:
    """The cached PST of *messages* messages (written on first use, atomically)."""
    from pstfast.synthetic.corpus import SynthOptions, options_record, synth

    options = SynthOptions(messages=messages, seed=seed)
    tag = hashlib.sha256(json.dumps(options_record(options), sort_keys=True).encode()).hexdigest()[:10]
    root = folder or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"synth-{messages}-s{seed}-{tag}.pst"
    info = path.with_suffix(".json")
    if path.exists() and info.exists():
        meta = json.loads(info.read_text())
        return BenchPst(path, meta["messages"], meta["attachments"], path.stat().st_size, seed)
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    result = synth(tmp, options=options)
    tmp.replace(path)
    meta = {"messages": result.messages, "attachments": result.attachments, "options": options_record(options),
            "writer_seconds": round(result.seconds, 2)}
    info.write_text(json.dumps(meta, indent=1))
    return BenchPst(path, result.messages, result.attachments, path.stat().st_size, seed)


if __name__ == "__main__":  # python -m perf.corpus 20000 100000: pre-build the cache
    import sys

    for n in [int(a) for a in sys.argv[1:]] or sizes():
        pst = bench_pst(n)
        print(f"{pst.path}  {pst.messages} messages, {pst.attachments} attachments, {pst.mb:.0f} MB")
