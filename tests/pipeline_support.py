"""Helpers shared by the pipeline tests: moto's standalone server on loopback, paths.

Not a test module (no ``test_`` prefix); imported by ``test_aws*.py``, ``test_queue*.py``
and ``test_pipeline*.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASL_V2 = REPO / "pstfast" / "pipeline" / "pst_ingest_v2.asl.yaml"
ASL_ROUTER = REPO / "pstfast" / "pipeline" / "pst_ingest_router.asl.yaml"
CORPUS = REPO.parent / "shared" / "corpus" / "public"

# credentials moto accepts; never real ones
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto's standalone server (``moto_server``) as a child process on 127.0.0.1."""

    def __init__(self, port: int | None = None, *, executing: bool = False,
                 env: dict[str, str] | None = None) -> None:
        """*executing*: run ``tests/moto_sfn_server.py`` (Step Functions executing, Batch jobs
        run on this host, the getmoto/moto#10076 patch) instead of plain moto_server; *env*:
        extra environment variables for the server process."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.executing = executing
        self.extra_env = env or {}

    def start(self) -> MotoServer:
        exe = shutil.which("moto_server")
        if self.executing:
            cmd = [sys.executable, str(Path(__file__).with_name("moto_sfn_server.py"))]
        else:
            cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self.process = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.extra_env, "MOTO_PORT": str(self.port)} if self.executing else None,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # poll readiness (a condition, not a fixed sleep)
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto_server did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # werkzeug exits at once on ^C
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3/s3fs (and pstfast) at this server."""
        return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": self.url}


def require_node() -> str:
    """Path of ``npx``; skips the calling test when node/npx are not installed."""
    npx = shutil.which("npx")
    if not npx or not shutil.which("node"):
        pytest.skip("node/npx not installed: the AWS stack checks need Node.js (CI has it)")
    if not (REPO / "node_modules" / "osls").is_dir():
        pytest.fail("node_modules missing: run `npm ci` in the repository root (the README's test command does)")
    return npx


def env_without_aws_credentials() -> dict[str, str]:
    """The current environment with every AWS credential source removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # no instance metadata lookups either
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env
