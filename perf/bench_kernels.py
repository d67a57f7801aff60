"""Benchmarks: each numba kernel against the plain-Python alternative, side by side.

Run with ``python -m pytest perf/bench_kernels.py --benchmark-enable -q`` (benchmarks are
disabled by default in pyproject's addopts). Each benchmark group holds one pair on the
same 50,000 realistic values: the plain-Python way first, then the numba batch; the
numba entry carries ``speedup`` (median of the alternative / median of the batch) in
``extra_info``, and the ratios are printed at the end of the module. The ``jit`` group
measures compiling every kernel with an empty numba cache against loading it from disk,
each in a fresh interpreter. The ``content_hash`` group compares the fused kernel with
the best plain alternative (batch whitespace normalization, then ``xxhash`` per row).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import xxhash

from pstfast.extraction import kernels

N = 50_000
_ROOT = Path(__file__).resolve().parents[1]
_medians: dict[str, float] = {}
_ratios: dict[str, float] = {}
_notes: list[str] = []

# --------------------------------------------------------------------------------------
# realistic, seeded data
# --------------------------------------------------------------------------------------

_FIRST = ["anna", "Bob", "CHRIS", "dörte", "Émile", "fatima", "Jürgen", "li", "María", "yuki"]
_LAST = ["Smith", "müller", "O'Neil", "garcía", "Tanaka", "nguyen", "ivanov", "Kowalski"]
_DOMAINS = ["Example.COM", "corp.example.org", "MAIL.Contoso.net", "bücher.example", "x.io"]
_WORDS = (
    "meeting budget review project update report contract invoice draft schedule call "
    "Besprechung Angebot Rechnung Termin 会議 見積 le projet réunion proposta Ünïcode "
    "Q3 2021 final v2 urgent please re scan"
).split()


def _addresses(rng: random.Random) -> list[str]:
    out = []
    for _ in range(N):
        local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}".replace("'", "")
        addr = f"{local}@{rng.choice(_DOMAINS)}"
        form = rng.random()
        if form < 0.15:
            addr = f"<{addr}>"
        elif form < 0.25:
            addr = f"SMTP:{addr}"
        elif form < 0.30:
            addr = f"mailto:{addr}"
        elif form < 0.35:
            addr = f" '{addr}' "
        out.append(addr)
    return out


def _subjects(rng: random.Random) -> list[str]:
    prefixes = ["", "", "", "RE: ", "Re: ", "FW: ", "Fwd: ", "AW: ", "WG: ", "RE: RE: ", "Re[2]: "]
    return [
        rng.choice(prefixes) + "  ".join(rng.choices(_WORDS, k=rng.randint(2, 9)))
        for _ in range(N)
    ]


def _bodies(rng: random.Random) -> list[str]:
    out = []
    for _ in range(N):
        lines = []
        for _ in range(rng.randint(3, 25)):
            words = rng.choices(_WORDS, k=rng.randint(4, 14))
            if rng.random() < 0.1:
                words.insert(rng.randrange(len(words)), "\u00a0")
            line = " ".join(words)
            lines.append("> " + line if rng.random() < 0.2 else line)
        out.append("Hi,\r\n\r\n" + "\r\n".join(lines) + "\r\n\r\nRegards\r\n")
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, list]:
    rng = random.Random(20240501)
    bodies = _bodies(rng)
    subjects = _subjects(rng)
    addresses = _addresses(rng)
    # the content_hash input: a canonical header block plus the normalized body
    canonical = [
        f"{a}\n{s}\n2021-03-04T05:06:07Z\n{b}".encode()
        for a, s, b in zip(addresses, subjects, bodies, strict=True)
    ]
    kernels.warm_up()
    heads = [f"{a}\n{s}\n2021-03-04T05:06:07Z\n" for a, s in zip(addresses, subjects, strict=True)]
    return {
        "heads": heads,
        "addresses": addresses,
        "subjects": subjects,
        "bodies": bodies,
        "hash_short": [c[:160] for c in canonical],
        "hash_full": canonical,
    }


@pytest.fixture(scope="module", autouse=True)
def _print_summary(request):
    yield
    lines = [f"  {group:<22} numba batch {ratio:5.2f}x the plain alternative"
             for group, ratio in _ratios.items()] + _notes  # fmt: skip
    if lines:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\nkernel benchmark summary (medians):\n" + "\n".join(lines))


def _run(benchmark, key: str, fn, *args, rounds: int = 5):
    result = benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:  # None when benchmarks are disabled
        _medians[key] = benchmark.stats.stats.median
    return result


def _record_ratio(benchmark, group: str) -> None:
    base, fast = _medians.get(f"{group}/python"), _medians.get(f"{group}/numba")
    if base and fast:
        _ratios[group] = base / fast
        benchmark.extra_info["speedup"] = round(base / fast, 2)


# --------------------------------------------------------------------------------------
# normalizers: reference loop vs numba batch
# --------------------------------------------------------------------------------------

_NORMALIZERS = {
    "address": ("addresses", kernels.ref_normalize_address, kernels.normalize_addresses),
    "subject": ("subjects", kernels.ref_normalize_subject, kernels.normalize_subjects),
    "whitespace": ("bodies", kernels.ref_normalize_whitespace, kernels.normalize_whitespace),
}


@pytest.mark.parametrize("kind", list(_NORMALIZERS))
@pytest.mark.parametrize("impl", ["python", "numba"])
def test_normalize(benchmark, data, kind: str, impl: str) -> None:
    field, ref, batched = _NORMALIZERS[kind]
    values = data[field]
    group = f"normalize_{kind}"
    benchmark.group = group
    benchmark.extra_info["values"] = len(values)
    benchmark.extra_info["mb"] = round(sum(map(len, values)) / 1e6, 1)
    if impl == "python":
        result = _run(benchmark, f"{group}/python", lambda v: [ref(x) for x in v], values, rounds=3)
    else:
        result = _run(benchmark, f"{group}/numba", batched, values)
        _record_ratio(benchmark, group)
    assert len(result) == len(values)


# --------------------------------------------------------------------------------------
# xxh3-128: xxhash.xxh3_128_hexdigest per item vs numba batch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["hash_short", "hash_full"])
@pytest.mark.parametrize("impl", ["python", "numba"])
def test_xxh3_128(benchmark, data, field: str, impl: str) -> None:
    values = data[field]
    group = f"xxh3_128_{field.removeprefix('hash_')}"
    benchmark.group = group
    benchmark.extra_info["values"] = len(values)
    benchmark.extra_info["mean_bytes"] = round(sum(map(len, values)) / len(values))
    if impl == "python":
        digest = xxhash.xxh3_128_hexdigest
        result = _run(benchmark, f"{group}/python", lambda v: [digest(x) for x in v], values)
    else:
        result = _run(benchmark, f"{group}/numba", kernels.xxh3_128_hexdigests, values)
        _record_ratio(benchmark, group)
    assert result[:100] == [xxhash.xxh3_128_hexdigest(v) for v in values[:100]]


# --------------------------------------------------------------------------------------
# content_hash: what the extractor does per row, the plain way vs the fused kernel
# --------------------------------------------------------------------------------------


def _content_hash_plain(heads: list[str], bodies: list[str]) -> list[str]:
    # best plain alternative: batch whitespace normalization, then xxhash per row
    digest = xxhash.xxh3_128_hexdigest
    normalized = kernels.normalize_whitespace(bodies)
    return [digest((h + b).encode()) for h, b in zip(heads, normalized, strict=True)]


@pytest.mark.parametrize("impl", ["python", "numba"])
def test_content_hash(benchmark, data, impl: str) -> None:
    group = "content_hash"
    benchmark.group = group
    heads, bodies = data["heads"], data["bodies"]
    benchmark.extra_info["values"] = len(heads)
    if impl == "python":
        result = _run(benchmark, f"{group}/python", _content_hash_plain, heads, bodies)
    else:
        result = _run(benchmark, f"{group}/numba", kernels.content_hashes, heads, bodies)
        _record_ratio(benchmark, group)
    assert result[:50] == _content_hash_plain(heads[:50], bodies[:50])


# --------------------------------------------------------------------------------------
# JIT: compile with an empty cache vs load from the on-disk cache
# --------------------------------------------------------------------------------------

_WARM_UP = "import json; from pstfast import kernels; print(json.dumps(kernels.warm_up()))"


def _warm_up_in_subprocess(cache_dir: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    done = subprocess.run(
        [sys.executable, "-c", _WARM_UP], env=env, cwd=_ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def test_jit_compile_vs_cached_load(benchmark) -> None:
    benchmark.group = "jit"
    with tempfile.TemporaryDirectory(prefix="pstfast-numba-") as cache_dir:
        cold = _warm_up_in_subprocess(cache_dir)  # empty cache: compiles and writes it
        warm = [_warm_up_in_subprocess(cache_dir) for _ in range(3)]
        # the benchmarked call: a fresh interpreter loading every kernel from the cache
        benchmark.pedantic(_warm_up_in_subprocess, args=(cache_dir,), rounds=3, iterations=1)
    benchmark.extra_info["cold_compile_s"] = round(cold, 2)
    benchmark.extra_info["cached_load_s"] = round(min(warm), 3)
    _notes.append(
        f"  jit: warm_up() with an empty cache {cold:.2f} s (compile), "
        f"from the on-disk cache {min(warm):.3f} s (load)"
    )


