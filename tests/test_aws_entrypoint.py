"""batch/entrypoint.sh as a plain command (CI has no Docker engine): what every Batch job runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_support import REPO

ENTRYPOINT = REPO / "batch" / "entrypoint.sh"


def run_entrypoint(args: list[str], scratch: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PSTFAST_SCRATCH": str(scratch), "PATH": bindir + os.pathsep + os.environ["PATH"], **env}
    return subprocess.run(["bash", str(ENTRYPOINT), *args], env=full_env, capture_output=True, text=True, timeout=300)


def test_dockerfile_warms_numba_and_uses_the_entrypoint() -> None:
    text = (REPO / "batch" / "Dockerfile").read_text()
    assert "RUN pstfast warm-up" in text  # the command itself: test_compiled_reader.py
    assert "NUMBA_CACHE_DIR" in text and "ENTRYPOINT" in text and "entrypoint.sh" in text
    from pstfast.cli import build_parser

    assert build_parser().parse_args(["warm-up"]).command == "warm-up"


def test_dockerfile_base_is_an_arg_and_dependencies_are_pinned() -> None:
    import re
    from importlib.metadata import requires

    text = (REPO / "batch" / "Dockerfile").read_text()
    assert "ARG BASE=python:3.12-slim-bookworm" in text
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms and all(f == "${BASE}" for f in froms), froms
    assert text.count("--constraint") == 2 and "--only-binary=:all:" in text
    # numba loads its cache only from a folder the job's user may write (found by build-image.sh)
    assert 'chown -R pstfast:pstfast "$NUMBA_CACHE_DIR"' in text and text.index("chown -R") > text.index("warm-up")
    pins = {}
    for line in (REPO / "batch" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    # every dependency the image installs (core + postgres, aws, opensearch, text, semantic) has a pin
    wanted = set()
    for req in requires("pstfast") or []:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        extra = re.search(r'extra == "(\w+)"', req)
        if extra is None or extra.group(1) in ("postgres", "aws", "opensearch", "text", "semantic"):
            wanted.add(name)
    assert "boto3" in wanted  # the SQS queue: pstfast[aws] names it (aiobotocore 3 no longer brings it)
    assert not wanted - set(pins) - {"pstfast"}, f"not pinned: {sorted(wanted - set(pins))}"


def test_build_image_script_is_valid_bash_and_checks_inside_the_image() -> None:
    script = REPO / "batch" / "build-image.sh"
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    for needle in ("mmdebstrap --quiet --variant=minbase", "buildah from scratch", "buildah commit",
                   "--build-arg BASE=", "pstfast --version", "pstfast warm-up --json", "pstfast dev synth",
                   "pstfast-entrypoint extract", "compiled_reader"):
        assert needle in text, needle


def test_per_job_scratch_folder_is_exported_and_removed(tmp_path: Path) -> None:
    proc = run_entrypoint(["-0"], tmp_path, PSTFAST_BIN="env", AWS_BATCH_JOB_ID="job-1")
    assert proc.returncode == 0, proc.stderr
    env = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
    job_dir = Path(env["PSTFAST_SCRATCH"])
    assert job_dir.parent == tmp_path and job_dir.name.startswith("pstfast-job-job-1.")
    assert not job_dir.exists() and list(tmp_path.iterdir()) == []


def test_runs_pstfast(tmp_path: Path) -> None:
    proc = run_entrypoint(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("pstfast ")


def test_bad_arguments_keep_their_exit_code(tmp_path: Path) -> None:
    proc = run_entrypoint(["pipeline", "stage"], tmp_path)
    assert proc.returncode == 2


@pytest.fixture(scope="module")
def truncated_pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pstfast.synthetic.corpus import SynthOptions, synth

    folder = tmp_path_factory.mktemp("pst")
    good = folder / "good.pst"
    synth(good, options=SynthOptions(messages=10, seed=2))
    bad = folder / "truncated.pst"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    return bad


def test_rejected_input_exits_zero_with_rejected_manifest(truncated_pst: Path, tmp_path: Path, pg_dsn: str) -> None:
    out = tmp_path / "out"
    proc = run_entrypoint(
        ["pipeline", "stage", "extract", "--pst-file-id", "bad1", "--project-id", "p", "--source", str(truncated_pst),
         "--out", str(out), "--db", pg_dsn], tmp_path / "scratch")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "pst-v2" / "bad1" / "stages" / "extract" / "manifest.json").read_text())
    assert manifest["status"] == "rejected"


def test_transient_failure_exits_75(truncated_pst: Path, tmp_path: Path) -> None:
    good = truncated_pst.parent / "good.pst"
    proc = run_entrypoint(
        ["pipeline", "stage", "extract", "--pst-file-id", "g1", "--project-id", "p", "--source", str(good),
         "--out", str(tmp_path / "out"), "--db", "postgresql://pstfast@127.0.0.1:1/none?connect_timeout=2"],
        tmp_path / "scratch")
    assert proc.returncode == 75, proc.stderr
