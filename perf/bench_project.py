"""Benchmark: K custodian PSTs of one organisation into one project (issue 18).

Run with ``python -m pytest perf/bench_project.py --benchmark-enable -q -s``. Sizes come
from the environment (defaults: ``PSTFAST_BENCH_CUSTODIANS=20`` PSTs from
``PSTFAST_BENCH_ORG_MESSAGES=10000`` messages of one organisation: ~2,000 per PST, the
same messages in the sender's and the custodian recipients' PSTs, so threads and duplicate
groups cross PSTs; ``pstfast dev synth --custodians``). The PSTs are extracted once, untimed.

``project`` group, side by side in one run, each on a fresh database of the same server:

* ``incremental``: per PST, in order, ``load`` → ``thread`` → ``dedupe`` → ``index`` as the
  pipeline runs them (thread / dedupe recompute what the PST touches);
* ``full_rebuild``: the same, with thread and dedupe over the whole project each time
  (``full=True``: what every PST cost before issue 18).

``extra_info["per_pst"]`` records for each PST the project's size before it and the seconds
of each database stage; ``extra_info`` also carries ``last_over_first`` (the last PST's
database stages over the first's; target <= 1.3) and the linear fit of the cumulative
post-processing seconds against K (``fit_r2``). The JSON (``--benchmark-json``) feeds
perf/project_model.py, the scaling model in perf/README.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pstfast
import pstfast.db.embedded
from perf.pgtools import Databases

CUSTODIANS = int(os.environ.get("PSTFAST_BENCH_CUSTODIANS", "20"))
ORG_MESSAGES = int(os.environ.get("PSTFAST_BENCH_ORG_MESSAGES", "10000"))
#: PSTFAST_BENCH_TEAM_SIZE: the organisation works in teams of N (synth_family's team_size);
#: unset, anyone writes in any thread (the densest family)
TEAM_SIZE = int(os.environ["PSTFAST_BENCH_TEAM_SIZE"]) if os.environ.get("PSTFAST_BENCH_TEAM_SIZE") else None
STAGES = ("load", "thread", "dedupe", "index")


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The custodian PSTs, extracted once: (output root, pst_file_ids in load order)."""
    from pstfast.extraction.run import extract
    from pstfast.synthetic.corpus import SynthOptions, synth_family

    tmp = tmp_path_factory.mktemp("project")
    options = SynthOptions(messages=ORG_MESSAGES, seed=18, attachment_rate=0.2, large_attachment_every=0,
                           body_kib=1, large_body_every=0)
    fam = synth_family(tmp / "pst", CUSTODIANS, options=options, team_size=TEAM_SIZE)
    ids = []
    for path in fam.paths:
        extract(path, tmp / "out", pst_file_id=path.stem, project_id="matter", progress=False)
        path.unlink()
        ids.append(path.stem)
    return tmp / "out", ids


def _project_size(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM email_messages WHERE project_id = 'matter'").fetchone()[0])


def _ingest(dsn: str, root: Path, ids: list[str], full: bool) -> list[dict[str, Any]]:
    rows = []
    for k, pid in enumerate(ids, start=1):
        before = _project_size(dsn)
        seconds = {}
        for stage in STAGES:
            t0 = time.perf_counter()
            if stage == "load":
                result: Any = pstfast.load(root, pid, dsn)
            elif stage == "thread":
                result = pstfast.thread(root, pid, dsn, full=full)
            elif stage == "dedupe":
                result = pstfast.dedupe(root, pid, dsn, full=full)
            else:
                result = pstfast.index(root, pid, dsn)
            seconds[stage] = round(time.perf_counter() - t0, 4)
            if stage == "load":
                emails = result.emails
            if stage == "thread":
                scope = result.scope
        rows.append({"k": k, "pst_file_id": pid, "emails": emails, "project_emails_before": before,
                     "thread_scope": scope, **{f"{s}_s": seconds[s] for s in STAGES},
                     "post_s": round(sum(seconds[s] for s in STAGES[1:]), 4),
                     "db_s": round(sum(seconds.values()), 4)})
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """last/first ratios (per email, the PSTs differ a little in size) and the linear fit of
    cumulative post-processing against K."""
    import numpy as np

    first, last = rows[0], rows[-1]
    per = {key: (last[key] / last["emails"]) / (first[key] / first["emails"]) for key in ("db_s", "post_s")}
    k = np.array([r["k"] for r in rows], dtype=float)
    cum = np.cumsum([r["post_s"] for r in rows])
    slope, icpt = np.polyfit(k, cum, 1)
    quad = np.polyfit(k, cum, 2)
    fit = slope * k + icpt
    r2 = 1 - float(((cum - fit) ** 2).sum() / ((cum - cum.mean()) ** 2).sum())
    return {"last_over_first_db": round(per["db_s"], 3), "last_over_first_post": round(per["post_s"], 3),
            "fit_slope_s_per_pst": round(float(slope), 4), "fit_r2": round(r2, 5),
            "fit_quadratic_coef": round(float(quad[0]), 5), "project_emails": last["project_emails_before"]
            + last["emails"], "post_total_s": round(float(cum[-1]), 3)}


def _print(name: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"\n{name}: k, project emails before, PST emails, scope, load / thread / dedupe / index s")
    for r in rows:
        print(f"  {r['k']:3d} {r['project_emails_before']:7d} {r['emails']:5d} {r['thread_scope']:6d}  "
              + " / ".join(f"{r[s + '_s']:.3f}" for s in STAGES))
    print(f"  {summary}")


@pytest.mark.benchmark(group="project")
@pytest.mark.parametrize("mode", ["incremental", "full_rebuild"])
def test_project(benchmark: Any, dbs: Databases, family: tuple[Path, list[str]], mode: str) -> None:
    root, ids = family
    dsn = dbs.fresh()
    out: dict[str, list[dict[str, Any]]] = {}

    def run() -> None:
        out["rows"] = _ingest(dsn, root, ids, full=mode == "full_rebuild")

    benchmark.pedantic(run, rounds=1, iterations=1)
    rows = out["rows"]
    summary = _summary(rows)
    benchmark.extra_info.update({"per_pst": rows, **summary, "custodians": len(ids),
                                 "messages": summary["project_emails"]})
    _print(mode, rows, summary)
    if mode == "incremental":
        with psycopg.connect(dsn) as conn:  # the incremental result is the full rebuild's
            before = conn.execute("SELECT md5(string_agg(concat_ws(',', email_id, thread_id, thread_parent_id,"
                                  " thread_position, duplicate_of, duplicate_pst_file_ids), '|' ORDER BY email_id))"
                                  " FROM email_messages").fetchone()[0]
        t0 = time.perf_counter()
        pstfast.thread(None, None, dsn, project_id="matter", full=True)
        pstfast.dedupe(None, None, dsn, project_id="matter", full=True)
        benchmark.extra_info["final_full_rebuild_s"] = round(time.perf_counter() - t0, 3)
        with psycopg.connect(dsn) as conn:
            after = conn.execute("SELECT md5(string_agg(concat_ws(',', email_id, thread_id, thread_parent_id,"
                                 " thread_position, duplicate_of, duplicate_pst_file_ids), '|' ORDER BY email_id))"
                                 " FROM email_messages").fetchone()[0]
        assert before == after
    dbs.drop(dsn)
