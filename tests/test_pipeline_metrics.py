"""EMF lines carry exactly the numbers of the stage manifest."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from pstfast.log import JsonFormatter
from pstfast.pipeline import metrics, runner, stagelog


def test_emf_line_shape() -> None:
    doc = metrics.emf_document("load", metrics.stage_metrics(rows=100, seconds=2.0, nbytes=5000), timestamp_ms=1)
    spec = doc["_aws"]["CloudWatchMetrics"][0]
    assert doc["_aws"]["Timestamp"] == 1 and spec["Namespace"] == "pstfast" and spec["Dimensions"] == [["Stage"]]
    assert {m["Name"]: m["Unit"] for m in spec["Metrics"]} == {
        "Rows": "Count", "Bytes": "Bytes", "Seconds": "Seconds", "RowsPerSecond": "Count/Second"}
    got = (doc["Stage"], doc["Rows"], doc["Bytes"], doc["Seconds"], doc["RowsPerSecond"])
    assert got == ("load", 100, 5000, 2.0, 50.0)


def test_metrics_without_bytes_or_time_are_left_out() -> None:
    doc = metrics.emf_document("thread", metrics.stage_metrics(rows=3, seconds=0.0))
    names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == ["Rows", "Seconds"] and "RowsPerSecond" not in doc


def test_emf_from_a_real_stage_manifest(tmp_path: Path, pg_dsn: str) -> None:
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "m.pst"
    synth(pst, options=SynthOptions(messages=10, seed=4))
    result = runner.run(str(pst), out=str(tmp_path / "out"), db=pg_dsn, project_id="p", sleep=lambda s: None)
    assert result.ok, result.summary()
    for stage in stagelog.STAGES:
        report = stagelog.read_stage_manifest(str(tmp_path / "out"), result.pst_file_id, stage)
        assert report is not None and report.metrics.get("rows") is not None, stage
        buf = io.StringIO()
        handler = logging.StreamHandler(buf)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("pstfast.pipeline.metrics")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            metrics.emit(report)
        finally:
            logger.removeHandler(handler)
        (line,) = buf.getvalue().splitlines()
        doc = json.loads(line)
        assert doc["Stage"] == stage and doc["Rows"] == report.metrics["rows"]
        assert doc["Seconds"] == pytest.approx(report.metrics["seconds"])
        assert doc["pst_file_id"] == result.pst_file_id and doc["status"] == "succeeded"
