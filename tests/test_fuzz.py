"""The fuzz harness (issue 19): mutated writer PSTs through the ``pstfast extract`` command,
each under a time and memory bound. Whatever the damage, the command exits 0 (with counts
that reconcile) or 65 (bad input) with one line and no traceback, and never hangs.

Mutations: random bytes, bytes inside blocks whose CRCs are then fixed (so the damage
reaches the heap, BTH, table and subnode parsers), block B-tree and subnode references
pointed back at themselves, and size fields. ``PSTFAST_FUZZ_EXAMPLES`` (default 12 per
reader) sets the budget; the long run's outcome table is in docs/testing.md.
"""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pst_variants import blocks, rewrite_block

from pstfast.synthetic.corpus import SynthOptions, synth

EXAMPLES = int(os.environ.get("PSTFAST_FUZZ_EXAMPLES", "12"))
SECONDS = 60  # per file: a hang fails the example
MEMORY = 2 << 30  # address space per extract (workers included): runaway allocation fails it
ALLOWED = {0, 65}


@pytest.fixture(scope="module")
def seed_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[tuple[int, int, int]]]:
    pst = tmp_path_factory.mktemp("fuzz") / "seed.pst"
    synth(pst, options=SynthOptions(messages=30, seed=8, embedded_rate=0.3, attachment_rate=0.5,
                                    large_attachment_every=0, large_body_every=8))
    data = pst.read_bytes()
    return data, blocks(data)


def mutate(data: bytes, all_blocks: list[tuple[int, int, int]], rng: random.Random) -> tuple[str, bytes]:
    """One mutant of *data* and the name of the mutation."""
    out = bytearray(data)
    kind = rng.choice(["bytes", "block", "block", "self_reference", "size"])
    if kind == "bytes":  # anywhere, CRCs left as they are
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return kind, bytes(out)
    bid, ib, cb = rng.choice(all_blocks)
    content = bytearray(out[ib:ib + cb])
    if kind == "block":
        for _ in range(rng.randint(1, 4)):
            content[rng.randrange(cb)] ^= rng.randint(1, 255)
    elif kind == "self_reference" and cb >= 16:  # an id field of this block naming the block itself
        at = rng.randrange(0, cb - 8, 4)
        struct.pack_into("<Q", content, at, bid)
    else:  # a 16- or 32-bit count or size field made huge, zero or off by one
        at = rng.randrange(0, max(cb - 4, 1), 2)
        value = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, struct.unpack_from("<H", content, at)[0] + 1])
        struct.pack_into("<I" if value > 0xFFFF else "<H", content, at, value & 0xFFFFFFFF)
    rewrite_block(out, ib, cb, bytes(content))
    return kind, bytes(out)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_mutant(path: Path, out: Path, reader: str) -> tuple[int, str, dict | None]:
    """(exit code, stderr, manifest counts) of one extract; 'timeout' is an exit code too."""
    env = {**os.environ, "PSTFAST_READER": reader}
    try:
        done = subprocess.run([sys.executable, "-m", "pstfast.cli", "extract", str(path), "--out", str(out),
                               "--workers", "1", "--pst-file-id", "fz"], capture_output=True, text=True,
                              timeout=SECONDS, env=env, preexec_fn=_limit)
    except subprocess.TimeoutExpired:
        return -1, "timeout", None
    manifest = out / "pst-v2" / "fz" / "manifest.json"
    counts = json.loads(manifest.read_text())["counts"] if manifest.exists() else None
    return done.returncode, done.stderr, counts


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_mutants_never_crash_hang_or_lose_count(seed_pst: tuple[bytes, list[tuple[int, int, int]]],
                                               tmp_path: Path, reader: str) -> None:
    data, all_blocks = seed_pst
    rng = random.Random(f"pstfast-fuzz-{reader}")  # the same mutants in every CI run
    outcomes: Counter[tuple[str, int]] = Counter()
    for i in range(EXAMPLES):
        kind, mutant = mutate(data, all_blocks, rng)
        path = tmp_path / f"m{i}.pst"
        path.write_bytes(mutant)
        code, err, counts = run_mutant(path, tmp_path / f"out{i}", reader)
        outcomes[(kind, code)] += 1
        assert code in ALLOWED, f"mutant {i} ({kind}): exit {code}: {err[-2000:]}"
        assert "Traceback" not in err, f"mutant {i} ({kind}): {err[-2000:]}"
        if code == 0:
            assert counts is not None and counts["items_seen"] == counts["emails"] + counts["errors"], counts
        else:
            assert len(err.strip().splitlines()) <= 2, err  # one error line (and perhaps the plan line)
        path.unlink()
    print(f"\nfuzz outcomes ({reader}, {EXAMPLES} mutants): " + ", ".join(
        f"{kind} -> exit {code}: {n}" for (kind, code), n in sorted(outcomes.items())))
