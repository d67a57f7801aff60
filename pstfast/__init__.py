"""pstfast: fast, staged, idempotent ingestion of Outlook PST files into PostgreSQL.

The public API is this module's ``__all__``: one function per pipeline stage plus the
whole-pipeline runner, their result types and the exception tree (:mod:`pstfast.errors`).
Nothing heavy (numba, pyarrow, the database driver, libpff) is imported by ``import
pstfast``: each function loads what it needs on first use. Type checkers see the real
signatures through the ``TYPE_CHECKING`` imports below.

Sub-packages are named for the stage (``extraction``, ``loading``, ``enrich``, ``db``,
``pipeline``, ``synthetic``, ``pst``, ``cli``), never for a public function: importing a
sub-package binds its name on this module, which would replace a function of that name.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    CorruptPstError,
    DatabaseError,
    ExtractRunningError,
    InputError,
    ManifestError,
    MissingDependencyError,
    NotAPstError,
    PstfastError,
    StorageError,
    TransientError,
    UsageError,
    WorkerDiedError,
)

if TYPE_CHECKING:
    from .db.migrate import MigrateResult, migrate
    from .enrich.dedupe import DedupeResult, dedupe
    from .enrich.index import IndexResult, index
    from .enrich.remove import RemoveResult, remove
    from .enrich.search import SearchHit, search
    from .enrich.thread import ThreadResult, thread
    from .extraction.run import extract
    from .extraction.warmup import warm_up
    from .loading.load import LoadResult, load
    from .manifest import Manifest, read_manifest, verify_manifest
    from .pipeline.runner import RunResult, StageTiming, run
    from .pipeline.sqs import SubmitResult, submit
    from .pipeline.stage import StageOutcome, run_stage
    from .pst.peers import Report as InspectReport
    from .pst.peers import inspect_pst
    from .synthetic.corpus import SynthOptions, SynthResult, synth
    from .synthetic.damage import DamagedVariant, damage

# public name -> (module, name there), imported on first use
_LAZY: dict[str, tuple[str, str]] = {
    name: (module, name)
    for module, names in {
        "pstfast.synthetic.corpus": ["synth", "SynthOptions", "SynthResult"],
        "pstfast.synthetic.damage": ["damage", "DamagedVariant"],
        "pstfast.pst.peers": ["inspect_pst"],
        "pstfast.extraction.run": ["extract"],
        "pstfast.extraction.warmup": ["warm_up"],
        "pstfast.manifest": ["Manifest", "read_manifest", "verify_manifest"],
        "pstfast.loading.load": ["load", "LoadResult"],
        "pstfast.enrich.thread": ["thread", "ThreadResult"],
        "pstfast.enrich.dedupe": ["dedupe", "DedupeResult"],
        "pstfast.enrich.index": ["index", "IndexResult"],
        "pstfast.enrich.remove": ["remove", "RemoveResult"],
        "pstfast.enrich.search": ["search", "SearchHit"],
        "pstfast.db.migrate": ["migrate", "MigrateResult"],
        "pstfast.pipeline.stage": ["run_stage", "StageOutcome"],
        "pstfast.pipeline.runner": ["run", "RunResult", "StageTiming"],
        "pstfast.pipeline.sqs": ["submit", "SubmitResult"],
    }.items()
    for name in names
}
_LAZY["InspectReport"] = ("pstfast.pst.peers", "Report")

__all__ = [
    "__version__",
    # stages and the pipeline
    "extract",
    "load",
    "thread",
    "dedupe",
    "index",
    "remove",
    "search",
    "run",
    "run_stage",
    "submit",
    "migrate",
    "warm_up",
    # PST files
    "synth",
    "damage",
    "inspect_pst",
    # results
    "Manifest",
    "read_manifest",
    "verify_manifest",
    "LoadResult",
    "ThreadResult",
    "DedupeResult",
    "IndexResult",
    "RemoveResult",
    "SearchHit",
    "MigrateResult",
    "RunResult",
    "StageTiming",
    "StageOutcome",
    "SubmitResult",
    "SynthOptions",
    "SynthResult",
    "DamagedVariant",
    "InspectReport",
    # errors
    "PstfastError",
    "InputError",
    "NotAPstError",
    "CorruptPstError",
    "ManifestError",
    "UsageError",
    "MissingDependencyError",
    "TransientError",
    "StorageError",
    "DatabaseError",
    "WorkerDiedError",
    "ExtractRunningError",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'pstfast' has no attribute {name!r}")
    value = getattr(import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
