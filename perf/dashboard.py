"""The perf dashboard: a static HTML page and PNG charts from the benchmark history.

``python -m perf.dashboard [--results perf/results] [--out perf/results/dashboard]`` (or
``pstfast perf-dashboard``) reads every pytest-benchmark JSON under the results folder
(one file per run, with machine info and commit id) and writes:

* ``throughput.png``: messages (rows, values) per second of each benchmark, run by run
  (x axis: commit and time), one panel per suite;
* ``ratios.png`` and the ratio table: each benchmark against its baseline
  (perf/ratios.py), from the latest run that measured both;
* ``scaling.png``: ``pstfast run`` wall time vs PST size per worker count, the legacy
  baseline, and the scaling model (perf/scaling.py) with its held-out check;
* ``per_vcpu.png``: messages/s and GB/h per vCPU vs PST size, one series per tool and
  configuration, the latest run of each size;
* ``stages.png``: seconds per stage (extract, load, thread, dedupe, index, the runner's
  remainder) of the latest ``pstfast run`` of each PST size and worker count;
* ``memory.png``: peak RSS of the main process and of the largest extract worker vs PST
  size (the worker-RSS benchmark), with ``pstfast run`` and the legacy ORM baseline;
* ``dashboard.png``: all of them in one image (the README embeds it);
* ``index.html``: the page, with the tables (ratios, model check, Batch projection).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python perf/dashboard.py``: make ``perf`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import ratios, scaling

RESULTS = Path(__file__).resolve().parent / "results"
_SIZED = re.compile(r"\[\d+-")  # the size in "test_pstfast[20000-2]" (extract, by PST size)
SUITES = ("e2e", "extract", "load", "kernels")


@dataclass
class Run:
    path: Path
    when: dt.datetime
    commit: str
    dirty: bool
    machine: str
    benchmarks: list[dict[str, Any]]
    vcpus: int | None = None  # the machine's CPU count (machine_info), None when not recorded

    @property
    def label(self) -> str:
        return f"{self.commit[:7]}{'+' if self.dirty else ''}\n{self.when:%m-%d %H:%M}"


def suite_of(bench: dict[str, Any]) -> str:
    name = bench["fullname"].rsplit("/", 1)[-1]
    return name.split("::")[0].removeprefix("bench_").removesuffix(".py")


def load_runs(results: Path = RESULTS) -> list[Run]:
    """Every benchmark JSON under *results*, oldest first (the dashboard folder skipped)."""
    runs = []
    for path in sorted(results.rglob("*.json")):
        if "dashboard" in path.parts:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{path}: not a benchmark JSON ({exc})") from exc
        if not data.get("benchmarks"):
            continue
        commit = data.get("commit_info") or {}
        when = dt.datetime.fromisoformat(data["datetime"].replace("Z", "+00:00"))
        machine = data.get("machine_info") or {}
        cpu = (machine.get("cpu") or {}).get("brand_raw") or machine.get("processor") or "?"
        benches = data["benchmarks"]
        ratios.annotate(benches)  # older files get the current rules too
        count = (machine.get("cpu") or {}).get("count")
        runs.append(Run(path, when, str(commit.get("id") or "unknown"), bool(commit.get("dirty")),
                        f"{machine.get('node', '?')} / {cpu}", benches, count if isinstance(count, int) else None))
    runs.sort(key=lambda r: r.when)
    return runs


def latest(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """The most recent result of every benchmark (by short full name)."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for b in run.benchmarks:
            out[b["fullname"].rsplit("/", 1)[-1]] = b
    return out


def ratio_table(runs: list[Run]) -> list[dict[str, Any]]:
    """Benchmark vs baseline, from the latest run holding both."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    newest: dict[tuple[str, str], int] = {}  # (extract benchmark without its size, baseline) -> last run
    for order, run in enumerate(runs):
        for bench, base, label in ratios.pairs(run.benchmarks):
            rows[(bench["name"], label)] = {
                "suite": suite_of(bench), "benchmark": bench["name"], "baseline": label,
                "baseline_name": base["name"], "rate": ratios.rate(bench), "baseline_rate": ratios.rate(base),
                "ratio": ratios.rate(bench) / ratios.rate(base) if ratios.rate(base) else float("nan"),
                "commit": run.commit[:7], "sampled": (base.get("extra_info") or {}).get("legacy_mode") == "sampled",
                "_run": order,
            }
            if suite_of(bench) == "extract" and _SIZED.search(bench["name"]):
                newest[(_SIZED.sub("[", bench["name"]), label)] = order
    # extract runs saved before sizes were parameters named none ("test_pstfast[2]"): a later
    # run at any size supersedes them
    kept = [r for r in rows.values() if newest.get((r["benchmark"], r["baseline"]), -1) < r["_run"]]
    for r in kept:
        del r["_run"]
    return sorted(kept, key=lambda r: (SUITES.index(r["suite"]) if r["suite"] in SUITES else 9,
                                       r["benchmark"], r["baseline"]))


def _plot_throughput(ax_by_suite: dict[str, Any], runs: list[Run]) -> None:
    labels = [r.label for r in runs]
    for suite, ax in ax_by_suite.items():
        names = sorted({b["name"] for r in runs for b in r.benchmarks if suite_of(b) == suite})
        for name in names:
            xs, ys = [], []
            for i, run in enumerate(runs):
                for b in run.benchmarks:
                    if b["name"] == name and suite_of(b) == suite:
                        xs.append(i)
                        ys.append(ratios.rate(b))
            if ys:
                ax.plot(xs, ys, marker="o", label=name.removeprefix("test_"))
        ax.set_title(f"{suite}: throughput per run")
        ax.set_yscale("log")
        ax.set_ylabel("items/s (log)")
        # at most ~12 run labels per panel: more print on top of each other
        step = max(1, -(-len(runs) // 12))
        ax.set_xticks(range(0, len(runs), step), labels[::step], fontsize=6, rotation=90)
        ax.grid(True, which="both", alpha=0.3)
        if names:
            ax.legend(fontsize=5, ncol=2)


def _plot_ratios(ax: Any, table: list[dict[str, Any]]) -> None:
    rows = [r for r in table if r["ratio"] == r["ratio"]]
    labels = [f"{r['benchmark'].removeprefix('test_')} vs {r['baseline']}{' (sampled)' if r['sampled'] else ''}"
              for r in rows]
    values = [r["ratio"] for r in rows]
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=6)
    ax.set_title("speed-up vs baseline (latest run; >1 = faster)")


def scaling_run(runs: list[Run]) -> Run:
    """The run the model is fitted on: the latest with the most end-to-end sizes (one run, so
    every point saw the same code and machine load)."""
    def sizes(run: Run) -> int:
        return len({p.size for p in scaling.points(run.benchmarks)})
    return max(reversed(runs), key=sizes)


def _plot_scaling(ax: Any, runs: list[Run]) -> dict[str, Any]:
    run = scaling_run(runs)
    benches = run.benchmarks
    pts = scaling.points(benches)
    info: dict[str, Any] = {"points": len(pts), "run": run.path.name}
    for w in sorted({p.workers for p in pts}):
        sel = sorted((p for p in pts if p.workers == w), key=lambda p: p.size)
        ax.plot([p.size for p in sel], [p.total for p in sel], "o", label=f"pstfast run, {w} worker(s), measured")
    legacy = [b for b in benches if b["name"].startswith("test_e2e_legacy")]
    for b in legacy:
        info_b = b.get("extra_info") or {}
        if info_b.get("legacy_mode") == "sampled":
            ax.plot([info_b["pst_messages"]], [ratios.legacy_projection(info_b)[0]], "x", color="tab:red", ms=8)
        else:
            ax.plot([info_b["messages"]], [b["stats"]["median"]], "s", color="tab:red")
    if legacy:
        ax.plot([], [], "s", color="tab:red", label="legacy ORM (square: measured, x: sampled projection)")
    if len({p.size for p in pts}) >= 2:
        model, held = scaling.fit(pts)
        top = max(p.size for p in pts)
        xs = [top * i / 50 for i in range(1, 51)]
        for w in sorted({p.workers for p in pts}):
            ax.plot(xs, [model.total(x, w) for x in xs], "--", lw=0.8, label=f"model, {w} worker(s)")
        for p in held:
            ax.annotate(f"held out: {scaling.check(model, [p])[0]['error_pct']:+.0f}%", (p.size, p.total),
                        fontsize=6, textcoords="offset points", xytext=(-60, 8))
        checks = [dict(c, run=run.path.name) for c in scaling.check(model, held)]
        # later re-measurements of a held-out size (e.g. a rerun on a quieter machine) count too
        held_sizes = {p.size for p in held}
        for other in runs:
            if other is run:
                continue
            extra = [p for p in scaling.points(other.benchmarks) if p.size in held_sizes]
            for p in extra:
                ax.plot([p.size], [p.total], "o", mfc="none", color="tab:orange" if p.workers > 1 else "tab:blue")
                c = scaling.check(model, [p])[0]
                ax.annotate(f"rerun {other.path.name[:4]}: {c['error_pct']:+.0f}%", (p.size, p.total),
                            fontsize=6, textcoords="offset points", xytext=(-70, -12))
                checks.append(dict(c, run=other.path.name))
        info.update(model=model, check=checks, projection=scaling.projection(model))
    ax.set_xlabel("messages in the PST")
    ax.set_ylabel("wall seconds")
    ax.set_title(f"end to end: wall time vs PST size (run {run.path.name[:4]}, {run.commit[:7]})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    return info


# --- by PST size: the latest measurement of every (series, PST) pair --------------------

_EXTRACT_WORKERS = re.compile(r"test_pstfast\[(?:\d+-)?(\d+)\]")
_E2E_WORKERS = re.compile(r"test_e2e_pstfast\[\d+-w(\d+)\]")
#: extract baselines -> (series label, processes they keep busy): readpst runs 2 jobs,
#: pffexport and the legacy extract one process each
_EXTRACT_TOOLS = {"test_readpst_j2": ("readpst -j 2", 2), "test_pffexport": ("pffexport", 1),
                  "test_legacy": ("legacy extract (pypff)", 1)}


@dataclass
class Sized:
    """One benchmark placed by the PST it read."""

    series: str
    end_to_end: bool
    pst_mb: float
    messages: int  # the PST's nominal size (the benchmark's size parameter), for labels
    bench: dict[str, Any]
    run: Run


def _config(bench: dict[str, Any]) -> tuple[str, int, bool] | None:
    """(series label, parallel processes, end to end?) of a throughput benchmark, None for
    the others (the RSS check is one round of a 2-worker extract, not a throughput series)."""
    name, base = bench["name"], bench["name"].split("[")[0]
    if suite_of(bench) == "extract":
        m = _EXTRACT_WORKERS.fullmatch(name)
        if m:
            return f"pstfast extract, {m[1]} worker(s)", int(m[1]), False
        tool = _EXTRACT_TOOLS.get(base)
        return (tool[0], tool[1], False) if tool else None
    if suite_of(bench) == "e2e":
        m = _E2E_WORKERS.fullmatch(name)
        if m:
            return f"pstfast run (end to end), {m[1]} worker(s)", int(m[1]), True
        if base == "test_e2e_legacy":
            return "legacy ORM (end to end)", 1, True
    return None


def _nominal(bench: dict[str, Any]) -> int:
    """The PST's size as the benchmark names it (``size``/``bench_pst``/``messages``
    parameter); older unparametrised runs fall back to the messages they counted."""
    params = bench.get("params") or {}
    for key in ("size", "bench_pst", "messages"):
        if isinstance(params.get(key), int) and params[key] > 0:
            return int(params[key])
    info = bench.get("extra_info") or {}
    return int(info.get("pst_messages") or info.get("messages") or 0)


def latest_by_size(runs: list[Run], series_of: Any = _config) -> dict[tuple[str, float], Sized]:
    """The newest result of every (series, PST size in MB); runs are oldest first, so a
    later run overwrites. Benchmarks without ``pst_mb`` (no PST to place them by) are skipped."""
    out: dict[tuple[str, float], Sized] = {}
    for run in runs:
        for b in run.benchmarks:
            cfg = series_of(b)
            mb = (b.get("extra_info") or {}).get("pst_mb")
            if cfg is None or not mb:
                continue
            out[(cfg[0], float(mb))] = Sized(cfg[0], cfg[-1], float(mb), _nominal(b), b, run)
    return out


def _size_ticks(ax: Any, points: list[Sized]) -> None:
    """x ticks at the measured PST sizes, labelled with GB and the nominal message count;
    sizes closer than 8 % of the axis would print on top of each other, so those drop."""
    by_mb: dict[float, int] = {}
    for p in points:  # one PST file, several nominal counts (e2e counts top-level messages only)
        by_mb[p.pst_mb] = min(by_mb.get(p.pst_mb, p.messages), p.messages)
    span = max(by_mb, default=1.0) or 1.0
    ticks: list[float] = []
    for mb in sorted(by_mb):
        if not ticks or (mb - ticks[-1]) / span > 0.08:
            ticks.append(mb)
    ax.set_xticks([mb / 1000 for mb in ticks],
                  [f"{_size(mb)}\n{_msgs(by_mb[mb])} msgs" for mb in ticks], fontsize=7)
    ax.margins(x=0.06)


def _plain_log_y(ax: Any) -> None:
    """Log y axis labelled in plain numbers (not 3x10^2), minor labels at 2 and 5 only so
    they never crowd."""
    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _: int) -> str:
        lead = f"{value:.0e}"[0]
        return f"{value:,.0f}" if lead in "25" and value >= 1 else (f"{value:g}" if lead in "25" else "")

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _size(mb: float) -> str:
    return f"{mb / 1000:.2f} GB" if mb >= 100 else f"{mb:.1f} MB"  # smoke PSTs are a few MB


def _msgs(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n:,}"


# --- view: throughput per vCPU vs PST size ---------------------------------------------

def _vcpus(cfg_processes: int, run: Run) -> int:
    """vCPUs a configuration occupies: its parallel processes (workers, readpst jobs), at
    most the machine's vCPUs. Per vCPU *used*, so 1 and 2 workers compare on efficiency
    (equal values = perfect scaling); PostgreSQL's backends are not counted."""
    return max(1, min(cfg_processes, run.vcpus or cfg_processes))


def per_vcpu_table(runs: list[Run]) -> list[dict[str, Any]]:
    """Messages/s and GB/h per vCPU, latest run of each (series, PST size)."""
    rows = []
    for (series, mb), p in sorted(latest_by_size(runs).items()):
        cfg = _config(p.bench)
        info = p.bench.get("extra_info") or {}
        projected = ratios.legacy_projection(info)
        # a sampled legacy run's whole-PST time is its projection (as in the ratio table)
        seconds = projected[0] if projected else p.bench["stats"].get("median")
        if cfg is None or not seconds:
            continue
        vcpus = _vcpus(cfg[1], p.run)
        rows.append({"series": series, "end_to_end": p.end_to_end, "pst_mb": mb, "messages": p.messages,
                     "vcpus": vcpus, "msgs_per_s_per_vcpu": ratios.rate(p.bench) / vcpus,
                     "gb_per_h_per_vcpu": mb / 1000 / seconds * 3600 / vcpus,
                     "sampled": projected is not None, "run": p.run.path.name, "_point": p})
    return rows


def _plot_per_vcpu(ax_rate: Any, ax_gb: Any, rows: list[dict[str, Any]], legend_ax: Any | None = None) -> None:
    series = sorted({r["series"] for r in rows}, key=lambda s: (" run " in s or "ORM" in s, s))
    for i, name in enumerate(series):
        sel = sorted((r for r in rows if r["series"] == name), key=lambda r: r["pst_mb"])
        # end-to-end series dashed: they include the database stages, extract-only ones do not
        style = {"marker": "s" if sel[0]["end_to_end"] else "o", "ls": "--" if sel[0]["end_to_end"] else "-",
                 "color": f"C{i % 10}", "label": name}
        xs = [r["pst_mb"] / 1000 for r in sel]
        ax_rate.plot(xs, [r["msgs_per_s_per_vcpu"] for r in sel], **style)
        ax_gb.plot(xs, [r["gb_per_h_per_vcpu"] for r in sel], **style)
        for r in sel:
            if r["sampled"]:  # projected from a sample, not measured on the whole PST
                for ax, key in ((ax_rate, "msgs_per_s_per_vcpu"), (ax_gb, "gb_per_h_per_vcpu")):
                    ax.plot([r["pst_mb"] / 1000], [r[key]], "x", color="black", ms=9)
    if any(r["sampled"] for r in rows):
        ax_rate.plot([], [], "x", color="black", ms=9, ls="", label="legacy sampled: projection")
    ax_rate.set_title("throughput per vCPU used vs PST size (latest run of each size)")
    ax_rate.set_ylabel("messages/s per vCPU (log)")
    ax_gb.set_ylabel("GB/h per vCPU (log)")
    ax_gb.set_xlabel("PST size (x: GB; the tick also gives the nominal message count)")
    for ax in (ax_rate, ax_gb):
        ax.grid(True, which="both", alpha=0.3)
        if rows:
            _plain_log_y(ax)
            _size_ticks(ax, [r["_point"] for r in rows])
    if not rows:
        ax_rate.text(0.5, 0.5, "no extract or end-to-end results with pst_mb", ha="center",
                     transform=ax_rate.transAxes)
        return
    ax_rate.tick_params(labelbottom=False)  # the lower panel carries the size labels
    (legend_ax or ax_rate).legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                                  title="vCPU = workers / jobs,\ncapped at the machine's", title_fontsize=6)


# --- view: time per stage of the end-to-end runs ---------------------------------------

STAGES = ("extract", *scaling.DB_STAGES)


def _e2e_pstfast(bench: dict[str, Any]) -> tuple[str, int, bool] | None:
    m = _E2E_WORKERS.fullmatch(bench["name"]) if suite_of(bench) == "e2e" else None
    return (f"w{m[1]}", int(m[1]), True) if m else None


def stage_table(runs: list[Run]) -> list[dict[str, Any]]:
    """Seconds per stage of the latest ``pstfast run`` per (PST size, workers), smallest
    first. ``other`` is the wall time (median) left after the stages: the runner's own
    overhead (process start, state machine); clamped at 0 since the stages come from one
    round and the wall time is the median of all."""
    rows = []
    for (_, mb), p in latest_by_size(runs, _e2e_pstfast).items():
        stages = (p.bench.get("extra_info") or {}).get("stage_seconds") or {}
        wall = float(p.bench["stats"].get("median") or 0.0)
        workers = int(p.series[1:])  # the series is "w<workers>" (_e2e_pstfast)
        row: dict[str, Any] = {"messages": p.messages, "pst_mb": mb, "workers": workers,
                               "wall_s": wall, "run": p.run.path.name, "has_stages": bool(stages)}
        for stage in STAGES:
            row[stage] = float(stages.get(stage) or 0.0)
        row["other"] = max(wall - sum(row[s] for s in STAGES), 0.0) if stages else 0.0
        rows.append(row)
    return sorted(rows, key=lambda r: (r["pst_mb"], r["workers"]))


def _plot_stages(ax: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        ax.text(0.5, 0.5, "no end-to-end (pstfast run) results", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    labels = [f"{_msgs(r['messages'])} msgs ({_size(r['pst_mb'])}), {r['workers']} worker(s)\n"
              f"run {r['run'][:4]}" for r in rows]
    ys = range(len(rows))
    left = [0.0] * len(rows)
    for i, stage in enumerate((*STAGES, "other")):
        widths = [r[stage] for r in rows]
        ax.barh(ys, widths, left=left, color="lightgrey" if stage == "other" else f"C{i}",
                label="other (runner overhead)" if stage == "other" else stage)
        left = [a + b for a, b in zip(left, widths)]
    # rows without per-stage seconds: their wall time as one hatched bar, so they still show
    totals_only = [r for r in rows if not r["has_stages"]]
    for i, r in enumerate(rows):
        if not r["has_stages"]:
            ax.barh([i], [r["wall_s"]], color="white", edgecolor="grey", hatch="//")
        ax.text(max(left[i], r["wall_s"]), i, f" {r['wall_s']:.0f} s", va="center", fontsize=7)
    if totals_only:
        ax.barh([], [], color="white", edgecolor="grey", hatch="//", label="total only (no stage_seconds)")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(left), max(r["wall_s"] for r in rows)) * 1.12)  # room for the totals
    ax.set_xlabel("seconds (wall; median round)")
    ax.set_title("pstfast run: seconds per stage (latest run per size, workers)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


# --- view: peak memory vs PST size -----------------------------------------------------

#: (series, benchmark test name, extra_info key): the RSS benchmark's main process is the
#: pytest process that called ``pstfast.extract`` (VmHWM reset before the test); the e2e
#: rows measure their own subprocess tree, so main = that command's process
_MEMORY = (
    ("extract 2 workers: main (pytest process)", "test_pstfast_worker_rss", "peak_rss_main_mb"),
    ("extract 2 workers: largest worker", "test_pstfast_worker_rss", "peak_rss_child_max_mb"),
    ("pstfast run 2 workers: main", "test_e2e_pstfast", "peak_rss_main_mb"),
    ("pstfast run 2 workers: largest child", "test_e2e_pstfast", "peak_rss_child_max_mb"),
    ("legacy ORM (one process)", "test_e2e_legacy", "peak_rss_main_mb"),
)


def _memory_bench(bench: dict[str, Any]) -> tuple[str, int, bool] | None:
    base = bench["name"].split("[")[0]
    if base == "test_e2e_pstfast" and not bench["name"].endswith("-w2]"):
        return None  # one worker count is enough to show the trend; 2 is the RSS benchmark's
    return (base, 0, False) if base in {b for _, b, _ in _MEMORY} else None


def memory_table(runs: list[Run]) -> list[dict[str, Any]]:
    """Peak RSS (MB) per series and PST size, latest run of each; a value of 0 (a process
    that was not there, e.g. the legacy run's children) is left out."""
    latest = latest_by_size(runs, _memory_bench)
    rows = []
    for series, base, key in _MEMORY:
        for (name, mb), p in sorted(latest.items()):
            info = p.bench.get("extra_info") or {}
            if name == base and info.get(key):
                rows.append({"series": series, "pst_mb": mb, "messages": p.messages, "rss_mb": float(info[key]),
                             "sampled": info.get("legacy_mode") == "sampled", "run": p.run.path.name,
                             "_point": p})
    return rows


def _plot_memory(ax: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        ax.text(0.5, 0.5, "no peak RSS recorded (worker-RSS benchmark: PSTFAST_BENCH_RSS_SIZES)",
                ha="center", transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
        return
    for i, (series, base, _) in enumerate(_MEMORY):
        sel = sorted((r for r in rows if r["series"] == series), key=lambda r: r["pst_mb"])
        if not sel:
            continue
        # the RSS benchmark solid, the other sources dashed (different process layouts)
        ax.plot([r["pst_mb"] / 1000 for r in sel], [r["rss_mb"] for r in sel], marker="o",
                ls="-" if base == "test_pstfast_worker_rss" else "--", color=f"C{i}", label=series)
        for r in sel:
            if r["sampled"]:  # the legacy run read only a sample of this PST
                ax.plot([r["pst_mb"] / 1000], [r["rss_mb"]], "x", color="black", ms=9)
    if any(r["sampled"] for r in rows):
        ax.plot([], [], "x", color="black", ms=9, ls="", label="legacy on a 10k sample of the PST")
    _size_ticks(ax, [r["_point"] for r in rows])
    ax.set_ylim(0, max(r["rss_mb"] for r in rows) * 1.15)
    ax.set_ylabel("peak RSS, MB (VmHWM)")
    ax.set_xlabel("PST size")
    ax.set_title("peak memory vs PST size (latest run per size)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def build(results: Path = RESULTS, out: Path | None = None) -> Path:
    """Write the charts and ``index.html``; return the page's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = out or results / "dashboard"
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(results)
    if not runs:
        raise SystemExit(f"no benchmark results under {results} "
                         "(run the suite with --benchmark-save; see perf/README.md)")
    suites = [s for s in SUITES if any(suite_of(b) == s for r in runs for b in r.benchmarks)]
    table = ratio_table(runs)

    fig, axes = plt.subplots(len(suites), 1, figsize=(10, 3.2 * len(suites)), squeeze=False)
    _plot_throughput({s: axes[i][0] for i, s in enumerate(suites)}, runs)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 0.3 * len(table) + 1.2))
    _plot_ratios(ax, table)
    fig.tight_layout()
    fig.savefig(out / "ratios.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    model_info = _plot_scaling(ax, runs)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)

    per_vcpu = per_vcpu_table(runs)
    fig, (ax_rate, ax_gb) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    _plot_per_vcpu(ax_rate, ax_gb, per_vcpu)
    fig.tight_layout()
    fig.savefig(out / "per_vcpu.png", dpi=110)
    plt.close(fig)

    stages = stage_table(runs)
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(stages) + 1.6))
    _plot_stages(ax, stages)
    fig.tight_layout()
    fig.savefig(out / "stages.png", dpi=110)
    plt.close(fig)

    memory = memory_table(runs)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    _plot_memory(ax, memory)
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=110)
    plt.close(fig)

    fig = plt.figure(figsize=(16, 22))
    grid = fig.add_gridspec(4, 2, height_ratios=[1, 0.9, 1.1, 0.9])
    _plot_ratios(fig.add_subplot(grid[0, 0]), table)
    _plot_scaling(fig.add_subplot(grid[0, 1]), runs)
    tp_axes = {}
    sub = grid[1, :].subgridspec(1, max(len(suites), 1))
    for i, s in enumerate(suites):
        tp_axes[s] = fig.add_subplot(sub[0, i])
    _plot_throughput(tp_axes, runs)
    # views with legends outside their axes: per vCPU gets a row, stages and memory share one
    per_vcpu_cell = grid[2, :].subgridspec(2, 1, hspace=0.08)
    ax_rate = fig.add_subplot(per_vcpu_cell[0, 0])
    _plot_per_vcpu(ax_rate, fig.add_subplot(per_vcpu_cell[1, 0], sharex=ax_rate), per_vcpu)
    _plot_stages(fig.add_subplot(grid[3, 0]), stages)
    _plot_memory(fig.add_subplot(grid[3, 1]), memory)
    fig.suptitle(f"pstfast perf: {len(runs)} runs, latest {runs[-1].commit[:7]} at {runs[-1].when:%Y-%m-%d %H:%M} "
                 f"on {runs[-1].machine}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))  # keep the suptitle clear of the top panels' titles
    fig.savefig(out / "dashboard.png", dpi=100)
    plt.close(fig)

    page = out / "index.html"
    views_data = {"per_vcpu": [{k: v for k, v in r.items() if not k.startswith("_")} for r in per_vcpu],
                  "stages": stages,
                  "memory": [{k: v for k, v in r.items() if not k.startswith("_")} for r in memory]}
    page.write_text(_html(runs, table, model_info, views_data), encoding="utf-8")
    summary = _summary(runs, table, model_info) | views_data
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return page


def _summary(runs: list[Run], table: list[dict[str, Any]], model_info: dict[str, Any]) -> dict[str, Any]:
    model = model_info.get("model")
    return {"runs": [{"file": str(r.path.name), "commit": r.commit, "when": r.when.isoformat()} for r in runs],
            "ratios": table, "model": model.__dict__ if model else None,
            "serial_fraction": model.serial_fraction if model else None,
            "check": model_info.get("check"), "projection": model_info.get("projection")}


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for k, _ in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def _html(runs: list[Run], table: list[dict[str, Any]], model_info: dict[str, Any],
          views: dict[str, list[dict[str, Any]]]) -> str:
    model = model_info.get("model")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>pstfast perf</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        "<h1>pstfast performance</h1>",
        f"<p>{len(runs)} runs from <code>perf/results</code>; latest: commit <code>{runs[-1].commit[:12]}</code> "
        f"at {runs[-1].when:%Y-%m-%d %H:%M} UTC on {html.escape(runs[-1].machine)}.</p>",
        "<h2>Speed-up vs baselines</h2><img src='ratios.png'>",
        _table(table, [("suite", "suite"), ("benchmark", "benchmark"), ("baseline", "baseline"),
                       ("rate", "items/s"), ("baseline_rate", "baseline items/s"), ("ratio", "ratio"),
                       ("sampled", "baseline sampled"), ("commit", "commit")]),
        "<h2>End-to-end scaling</h2><img src='scaling.png'>",
    ]
    if model:
        parts.append(
            f"<p>Model from run <code>{html.escape(model_info['run'])}</code> "
            f"(fitted on sizes {model.fitted_on}): extract = N &times; "
            f"({model.s * 1e3:.3f} ms + {model.p * 1e3:.3f} ms / W) + {model.q * 1e9:.2f}e-9 s &times; N&sup2;; "
            f"database stages = {model.d0:.1f} s + N &times; "
            f"{model.d * 1e3:.3f} ms; runner overhead {model.overhead:.1f} s. Serial fraction of extract: "
            f"{model.serial_fraction:.0%}.</p>")
        parts.append("<h3>Check against the held-out size</h3>")
        parts.append(_table(model_info.get("check") or [], [("run", "run"), ("size", "messages"), ("workers", "workers"),
                     ("measured_s", "measured s"), ("predicted_s", "predicted s"), ("error_pct", "error %")]))
        parts.append("<h3>PROJECTION (not measured): one PST on a Batch instance, W = vCPUs extract workers</h3>")
        parts.append(_table(model_info.get("projection") or [], [
                     ("messages", "messages"), ("vcpus", "vCPU"), ("extract_s", "extract s"),
                     ("extract_msgs_per_s", "extract msgs/s"), ("e2e_s", "end-to-end s"),
                     ("e2e_msgs_per_s", "end-to-end msgs/s")]))
    parts.append("<h2>Throughput per vCPU vs PST size</h2><img src='per_vcpu.png'>")
    parts.append("<p>Latest run of each (tool, PST size). vCPU = the configuration's parallel processes "
                 "(extract workers, readpst jobs; 1 for pffexport and legacy) capped at the machine's vCPUs; "
                 "PostgreSQL's backends are not counted. Dashed: end to end (with the database stages).</p>")
    parts.append(_table(views["per_vcpu"], [("series", "series"), ("messages", "PST messages"), ("pst_mb", "PST MB"),
                        ("vcpus", "vCPU"), ("msgs_per_s_per_vcpu", "msgs/s per vCPU"),
                        ("gb_per_h_per_vcpu", "GB/h per vCPU"), ("sampled", "legacy sampled"), ("run", "run")]))
    parts.append("<h2>pstfast run: time per stage</h2><img src='stages.png'>")
    if any(not r["has_stages"] for r in views["stages"]):
        parts.append("<p>Hatched rows recorded only their total wall time (no <code>stage_seconds</code>).</p>")
    parts.append(_table(views["stages"], [("messages", "PST messages"), ("workers", "workers"),
                        *[(s, f"{s} s") for s in (*STAGES, "other")], ("wall_s", "wall s"), ("run", "run")]))
    parts.append("<h2>Peak memory vs PST size</h2><img src='memory.png'>")
    parts.append("<p>VmHWM from <code>/proc</code>. The worker-RSS benchmark's main process is the pytest process "
                 "that called <code>pstfast.extract</code>; PostgreSQL's backends are not counted.</p>")
    parts.append(_table(views["memory"], [("series", "series"), ("messages", "PST messages"), ("pst_mb", "PST MB"),
                        ("rss_mb", "peak RSS MB"), ("sampled", "legacy sampled"), ("run", "run")]))
    parts.append("<h2>Throughput over runs</h2><img src='throughput.png'>")
    parts.append("<h2>Runs</h2>")
    parts.append(_table([{"file": r.path.name, "commit": r.commit[:12] + ("+dirty" if r.dirty else ""),
                          "when": f"{r.when:%Y-%m-%d %H:%M}", "benchmarks": len(r.benchmarks)} for r in runs],
                        [("file", "file"), ("commit", "commit"), ("when", "when"), ("benchmarks", "benchmarks")]))
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.dashboard", description="build the perf dashboard")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of benchmark JSON files")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RESULTS/dashboard)")
    args = p.parse_args(argv)
    page = build(args.results, args.out)
    print(f"dashboard: {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
