"""Which benchmark is compared with which baseline, and how.

One table serves the suite (``perf/conftest.py`` writes every ratio into the saved JSON's
``extra_info``) and the dashboard (which recomputes them from older files too). A ratio is
``rate(benchmark) / rate(baseline)`` where rate is messages (or rows, or values) per second
of the median round, so a baseline measured on a sample (fewer rows) compares fairly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: (benchmark fullname regex, baseline fullname template, label). Templates are filled
#: with the named groups of the match.
RULES: list[tuple[str, str, str]] = [
    # end-to-end: pstfast run vs the legacy ORM baseline, and 2 vs 1 workers
    (r"bench_e2e\.py::test_e2e_pstfast\[(?P<size>\d+)-w(?P<w>\d+)\]", "bench_e2e.py::test_e2e_legacy[{size}]",
     "legacy ORM"),
    (r"bench_e2e\.py::test_e2e_pstfast\[(?P<size>\d+)-w2\]", "bench_e2e.py::test_e2e_pstfast[{size}-w1]", "1 worker"),
    # the database's floor (no run can beat legacy by more than this ratio on that server)
    (r"bench_e2e\.py::test_db_floor\[(?P<size>\d+)\]", "bench_e2e.py::test_e2e_legacy[{size}]", "legacy ORM"),
    # extract alone (perf/bench_extract.py), per PST size; runs saved before sizes were
    # parameters name no size (one size per run)
    (r"bench_extract\.py::test_pstfast\[(?P<size>\d+)-(?P<w>\d+)\]", "bench_extract.py::test_legacy[{size}]",
     "legacy extract"),
    (r"bench_extract\.py::test_pstfast\[(?P<size>\d+)-(?P<w>\d+)\]", "bench_extract.py::test_readpst_j2[{size}]",
     "readpst -j 2"),
    (r"bench_extract\.py::test_pstfast\[(?P<size>\d+)-(?P<w>\d+)\]", "bench_extract.py::test_pffexport[{size}]",
     "pffexport"),
    (r"bench_extract\.py::test_pstfast\[(?P<size>\d+)-2\]", "bench_extract.py::test_pstfast[{size}-1]", "1 worker"),
    (r"bench_extract\.py::test_pstfast\[(?P<w>\d+)\]", "bench_extract.py::test_legacy", "legacy extract"),
    (r"bench_extract\.py::test_pstfast\[(?P<w>\d+)\]", "bench_extract.py::test_readpst_j2", "readpst -j 2"),
    (r"bench_extract\.py::test_pstfast\[(?P<w>\d+)\]", "bench_extract.py::test_pffexport", "pffexport"),
    (r"bench_extract\.py::test_pstfast\[2\]", "bench_extract.py::test_pstfast[1]", "1 worker"),
    # load alone (perf/bench_load.py)
    (r"bench_load\.py::test_pstfast_load", "bench_load.py::test_raw_copy_psql", "raw COPY"),
    (r"bench_load\.py::test_pstfast_load", "bench_load.py::test_per_row_insert", "per-row INSERT"),
    (r"bench_load\.py::test_load_toast\[lz4\]", "bench_load.py::test_load_toast[pglz]", "pglz"),
    # kernels vs their plain-Python references (perf/bench_kernels.py)
    (r"bench_kernels\.py::(?P<t>test_\w+)\[numba(?P<rest>[^\]]*)\]", "bench_kernels.py::{t}[python{rest}]",
     "Python reference"),
]

_RATE_KEYS = ("messages_per_s", "rows_per_s")


def _short(fullname: str) -> str:
    return fullname.rsplit("/", 1)[-1]


def legacy_projection(info: dict[str, Any]) -> tuple[float, float, float] | None:
    """(projected seconds for the whole PST, fixed seconds, seconds per message) of a
    sampled legacy run; None when not sampled.

    Samples that carry ``open_seconds`` and ``run_seconds`` (libpff opening the PST, and
    the whole ingest, timed by the legacy run itself) give: fixed = process start-up + the
    open, per message = the largest sample's ingest time after the open over its messages.
    Older samples (without them): a straight line through the two largest; there the open's
    noise (±10 s of ~130 s at 100k messages) can swamp the difference between samples.
    """
    values = list((info.get("legacy_samples") or {}).values())
    if info.get("legacy_mode") != "sampled" or not values or not info.get("pst_messages"):
        return None
    big = max(values, key=lambda v: v["messages"])
    if big.get("open_seconds") is not None and big.get("run_seconds") is not None:
        fixed = big["seconds"] - big["run_seconds"] + big["open_seconds"]
        per = (big["run_seconds"] - big["open_seconds"]) / big["messages"]
        return fixed + per * info["pst_messages"], fixed, per
    samples = sorted((v["messages"], v["seconds"]) for v in values)
    if len(samples) == 1:
        return samples[0][1] / samples[0][0] * info["pst_messages"], 0.0, samples[0][1] / samples[0][0]
    (n1, t1), (n2, t2) = samples[-2], samples[-1]
    per = (t2 - t1) / (n2 - n1)
    fixed = max(t2 - per * n2, 0.0)
    return fixed + per * info["pst_messages"], fixed, per


def rate(bench: dict[str, Any]) -> float:
    """Items per second of the median round (messages, rows or values; 1/median otherwise).
    A sampled legacy run's rate is its projection for the whole PST (start-up cost paid once)."""
    info = bench.get("extra_info") or {}
    projected = legacy_projection(info)
    if projected is not None:
        return info["pst_messages"] / projected[0]
    median = bench["stats"]["median"]
    for key in ("messages", "rows", "values"):
        if info.get(key) and median:
            return float(info[key]) / median
    for key in _RATE_KEYS:
        if info.get(key):
            return float(info[key])
    return 1.0 / median if median else 0.0


def pairs(benchmarks: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(benchmark, baseline, label) for every rule whose both sides are present."""
    by_name = {_short(b["fullname"]): b for b in benchmarks}
    out = []
    for name, bench in by_name.items():
        for pattern, template, label in RULES:
            m = re.fullmatch(pattern, name)
            if m is None:
                continue
            base = by_name.get(template.format(**m.groupdict()))
            if base is not None and base is not bench:
                out.append((bench, base, label))
    return out


def ratio_key(label: str) -> str:
    """The ``extra_info`` key for a ratio against *label*."""
    return "ratio_vs_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def annotate(benchmarks: list[dict[str, Any]]) -> None:
    """Write ``ratio_vs_<baseline>`` into each benchmark's ``extra_info``."""
    for bench, base, label in pairs(benchmarks):
        base_rate = rate(base)
        if base_rate:
            bench.setdefault("extra_info", {})[ratio_key(label)] = round(rate(bench) / base_rate, 2)
