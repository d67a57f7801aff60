"""Stage metrics as CloudWatch Embedded Metric Format (EMF) lines.

In AWS Batch, stdout goes to CloudWatch Logs, which turns each EMF line into metrics
(namespace ``pstfast``, dimension ``Stage``) with no agent and no API calls. The numbers
are the ones the stage manifest carries (``metrics``: rows, bytes, seconds, rate), so a
dashboard and the manifest never disagree.

One line looks like::

    {"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{"Namespace": "pstfast",
      "Dimensions": [["Stage"]], "Metrics": [{"Name": "Rows", "Unit": "Count"}, ...]}]},
     "Stage": "extract", "Rows": 212, "Bytes": 362924, "Seconds": 1.4, "RowsPerSecond": 151.4,
     "pst_file_id": "...", "project_id": "...", "status": "succeeded", "attempt": 1}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "pstfast"

#: EMF metric name -> (key in the stage manifest's ``metrics``, CloudWatch unit)
METRICS = {
    "Rows": ("rows", "Count"),
    "Bytes": ("bytes", "Bytes"),
    "Seconds": ("seconds", "Seconds"),
    "RowsPerSecond": ("rows_per_second", "Count/Second"),
}

log = logging.getLogger(__name__)


def stage_metrics(rows: int, seconds: float, nbytes: int | None = None) -> dict[str, float]:
    """The manifest's ``metrics`` block: rows, bytes, seconds and the rate."""
    out: dict[str, float] = {"rows": rows, "seconds": round(seconds, 6)}
    if nbytes is not None:
        out["bytes"] = nbytes
    if seconds > 0:
        out["rows_per_second"] = round(rows / seconds, 1)
    return out


def emf_document(
    stage: str,
    metrics: Mapping[str, float],
    *,
    properties: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """One EMF document for *stage* with the metrics present in *metrics*."""
    present = {name: (key, unit) for name, (key, unit) in METRICS.items() if metrics.get(key) is not None}
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Stage"]],
                "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in present.items()],
            }],
        },
        "Stage": stage,
    }
    for name, (key, _) in present.items():
        doc[name] = metrics[key]
    for key, value in (properties or {}).items():
        doc.setdefault(key, value)
    return doc


def emit(report: Any, *, namespace: str = NAMESPACE) -> dict[str, Any]:
    """Log the EMF document of a finished stage (a :class:`pstfast.pipeline.stagelog.StageReport`)
    as the ``emf`` extra of one ``pstfast.pipeline.metrics`` record: with ``--log-format
    json`` (the Batch jobs' setting) its keys are the log line's top level, which
    CloudWatch reads as metrics."""
    doc = emf_document(
        report.stage,
        report.metrics,
        properties={
            "pst_file_id": report.pst_file_id,
            "project_id": report.project_id,
            "status": report.status,
            "attempt": report.attempt,
        },
        namespace=namespace,
    )
    log.info("stage %s metrics", report.stage, extra={"emf": doc})
    return doc
