"""Scaling model: wall time of ``pstfast run`` vs PST size and worker count.

Built only from measured per-stage costs (the ``stage_seconds`` that perf/bench_e2e.py
records for every ``pstfast run``):

* extract: ``E(N, W) = N * (s + p / W) + q * N**2``: a serial per-message part (hashing
  the input, merging, manifest), a parallel per-message part split over W workers, and a
  term that grows with the square of the PST's size. The last one was needed while the
  extract read with libpff, whose ``file.open`` is quadratic in the item count (~1 s for
  20k messages, ~125 s for 100k, paid by every worker); with pstfast's own reader it fits
  to ~0 and is kept as a check (a cost cannot be negative: it is clamped at 0). Least
  squares over every (size, workers) point fitted.
* database stages (load, thread, dedupe, index): ``D(N) = d0 + N * d``, one PostgreSQL
  connection each, independent of W.
* the runner's own overhead (state machine, stage processes): the measured remainder,
  averaged.

The model is fitted on every size but the largest, and checked against the largest
(measured, held out). The Batch table applies the same model with W = vCPUs: a projection
(Amdahl on this machine's serial fraction; it assumes disk and memory bandwidth keep up
and the database stages run on a database sized like this one), not a measurement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DB_STAGES = ("load", "thread", "dedupe", "index")
_NAME = re.compile(r"test_e2e_pstfast\[(\d+)-w(\d+)\]")


@dataclass
class Point:
    size: int  # messages (email rows)
    workers: int
    total: float
    extract: float
    db: float
    overhead: float


@dataclass
class Model:
    e0: float
    s: float
    p: float
    q: float
    d0: float
    d: float
    overhead: float
    fitted_on: list[int]

    def extract(self, n: float, w: int) -> float:
        return self.e0 + n * (self.s + self.p / w) + self.q * n * n

    def db(self, n: float) -> float:
        return self.d0 + n * self.d

    def total(self, n: float, w: int) -> float:
        return self.extract(n, w) + self.db(n) + self.overhead

    @property
    def serial_fraction(self) -> float:
        """Serial share of the linear per-message extract cost (the N**2 term is left out)."""
        return self.s / (self.s + self.p) if self.s + self.p > 0 else 1.0


def points(benchmarks: list[dict[str, Any]]) -> list[Point]:
    """One point per ``test_e2e_pstfast[size-wW]`` with per-stage seconds."""
    out = []
    for b in benchmarks:
        m = _NAME.search(b["name"])
        info = b.get("extra_info") or {}
        stages = info.get("stage_seconds")
        if not m or not stages:
            continue
        total = b["stats"]["median"]
        extract = float(stages.get("extract") or 0.0)
        db = sum(float(stages.get(s) or 0.0) for s in DB_STAGES)
        out.append(Point(int(info.get("messages") or m.group(1)), int(m.group(2)), total, extract, db,
                         total - extract - db))
    return out


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope); a line through the origin for one point."""
    if len(set(xs)) < 2:
        return 0.0, sum(ys) / sum(xs)
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def fit(pts: list[Point], hold_out_largest: bool = True) -> tuple[Model, list[Point]]:
    """The model from *pts* (minus the largest size when *hold_out_largest*), and the held-out points."""
    sizes = sorted({p.size for p in pts})
    held = [p for p in pts if hold_out_largest and len(sizes) > 2 and p.size == sizes[-1]]
    train = [p for p in pts if p not in held]
    e0 = 0.0
    if len({p.workers for p in train}) >= 2 and len({p.size for p in train}) >= 2:
        s, par, q = _lstsq([[p.size, p.size / p.workers, float(p.size) ** 2] for p in train],
                           [p.extract for p in train])
        s, par, q = max(s, 0.0), max(par, 0.0), max(q, 0.0)  # a cost cannot be negative
    else:  # not enough points for three terms: one straight line through the origin
        s, par, q = sum(p.extract for p in train) / sum(p.size for p in train), 0.0, 0.0
    d0, d = _line([p.size for p in train], [p.db for p in train])
    overhead = sum(p.overhead for p in train) / len(train)
    return Model(e0, s, par, q, d0, d, overhead, sorted({p.size for p in train})), held


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least-squares coefficients of ``ys ~ rows`` (numpy)."""
    import numpy as np

    coef, *_ = np.linalg.lstsq(np.array(rows, dtype=float), np.array(ys, dtype=float), rcond=None)
    return [float(c) for c in coef]


def check(model: Model, held: list[Point]) -> list[dict[str, Any]]:
    """Predicted vs measured for each held-out point."""
    return [{"size": p.size, "workers": p.workers, "measured_s": round(p.total, 1),
             "predicted_s": round(model.total(p.size, p.workers), 1),
             "error_pct": round(100 * (model.total(p.size, p.workers) - p.total) / p.total, 1)} for p in held]


def projection(model: Model, sizes: tuple[int, ...] = (20_000, 100_000),
               vcpus: tuple[int, ...] = (2, 16, 32, 64)) -> list[dict[str, Any]]:
    """PROJECTION for a Batch instance with W = vCPU extract workers, one PST of each size."""
    rows = []
    for n in sizes:
        for w in vcpus:
            ext = model.extract(n, w)
            total = model.total(n, w)
            rows.append({"messages": n, "vcpus": w, "extract_s": round(ext, 1), "extract_msgs_per_s": round(n / ext),
                         "e2e_s": round(total, 1), "e2e_msgs_per_s": round(n / total), "projection": True})
    return rows
