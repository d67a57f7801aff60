"""pstfast: fast, staged, idempotent ingestion of Outlook PST files into PostgreSQL.

The public API is this module's ``__all__``. Heavy dependencies (libpff, numba, the
database driver) load only when the function that needs them is first called.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    CorruptPstError,
    DatabaseError,
    InputError,
    ManifestError,
    NotAPstError,
    PstfastError,
    StorageError,
    TransientError,
    UsageError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_LAZY = {
    "synth": "pstfast.synthetic",
    "damage": "pstfast.faults",
    "inspect_pst": "pstfast.inspect",
    "extract": "pstfast.extractor",
    "Manifest": "pstfast.manifest",
    "read_manifest": "pstfast.manifest",
    "verify_manifest": "pstfast.manifest",
    # module names differ from the function names on purpose: importing pstfast.load
    # would otherwise replace the function pstfast.load with the module
    "load": "pstfast.loader",
    "thread": "pstfast.threader",
    "dedupe": "pstfast.deduper",
    "index": "pstfast.indexer",
    "search": "pstfast.searcher",
    "migrate": "pstfast.migrations",
    "run_stage": "pstfast.stages",
    "run": "pstfast.runner",
    "submit": "pstfast.queue",
    "warm_up": "pstfast.jit",
}

__all__ = [
    "__version__",
    "CorruptPstError",
    "DatabaseError",
    "InputError",
    "ManifestError",
    "NotAPstError",
    "PstfastError",
    "StorageError",
    "TransientError",
    "UsageError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pstfast' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
