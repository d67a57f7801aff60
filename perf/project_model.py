"""Scaling model of one PST's database stages against the project's size (issue 18).

``python perf/project_model.py [perf/results/project/bench_project_k20.json]`` reads the
``incremental`` series of perf/bench_project.py and fits, per email of the PST,

    seconds / email = a + b * log2(N)        (N = emails already in the project)

— the work per email is a fixed amount (COPY, tokens, tsvectors) plus index descents
(primary key, token GIN, content_hash, thread_id B-trees: depth grows with log N); the
threads and duplicate groups a PST touches depend on how many custodians share its
messages, not on N. It also fits the pessimistic ``a + c * N`` for comparison. Each fit is
made on the first half of the PSTs and checked against the largest measured size, then
used for a 2,000-email PST entering a 1M- and a 10M-email project.

Beyond what was measured: at 10M emails (~50 GB of rows, several GB of indexes) the
indexes no longer fit in memory, so each descent may read a page: the model adds
``lookups_per_email * miss_rate * page_read_s`` (defaults: 8 lookups, 25 % misses at 1M,
60 % at 10M, 0.1 ms per 8 kB read on NVMe/gp3), stated separately.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parent / "results" / "project" / "bench_project_k20.json"
PST_EMAILS = 2000
IO = {"lookups_per_email": 8, "page_read_s": 1e-4, "miss_rate": {1_000_000: 0.25, 10_000_000: 0.6}}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def series(path: Path) -> list[dict[str, Any]]:
    """The incremental run's per-PST rows from a pytest-benchmark JSON."""
    data = json.loads(path.read_text())
    for bench in data["benchmarks"]:
        if bench["name"].endswith("[incremental]"):
            return list(bench["extra_info"]["per_pst"])
    raise SystemExit(f"{path}: no incremental series")


def model(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fits, the check at the largest size, and the 1M / 10M predictions."""
    pts = [(max(r["project_emails_before"], 1), r["db_s"] / r["emails"]) for r in rows if r["k"] > 1]
    half = pts[: max(2, len(pts) // 2)]
    largest = pts[-1]
    out: dict[str, Any] = {"largest_measured_n": largest[0], "largest_measured_s_per_email": largest[1]}
    for name, f in (("log", lambda n: math.log2(n)), ("linear", lambda n: float(n))):
        a, b = _fit([f(n) for n, _ in half], [y for _, y in half])
        predicted = a + b * f(largest[0])
        out[name] = {"a": a, "b": b, "check_predicted_s_per_email": predicted,
                     "check_error_pct": 100 * (predicted - largest[1]) / largest[1]}
        for n in (1_000_000, 10_000_000):
            cpu = (a + b * f(n)) * PST_EMAILS
            io = IO["lookups_per_email"] * IO["miss_rate"][n] * IO["page_read_s"] * PST_EMAILS
            out[name][f"pst_s_at_{n}"] = {"in_memory": cpu, "with_index_misses": cpu + io}
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    rows = series(path)
    m = model(rows)
    first = rows[0]["db_s"] / rows[0]["emails"] * PST_EMAILS
    print(f"measured: {len(rows)} PSTs, largest project before a PST: {m['largest_measured_n']:,} emails, "
          f"{m['largest_measured_s_per_email'] * PST_EMAILS:.2f} s per {PST_EMAILS}-email PST "
          f"(first PST: {first:.2f} s)")
    for name in ("log", "linear"):
        f = m[name]
        print(f"{name:6s} fit on the first half: check at the largest size {f['check_error_pct']:+.1f} %; "
              + "; ".join(f"{n // 1_000_000}M: {f[f'pst_s_at_{n}']['in_memory']:.2f} s in memory, "
                          f"{f[f'pst_s_at_{n}']['with_index_misses']:.2f} s with index misses"
                          for n in (1_000_000, 10_000_000)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
