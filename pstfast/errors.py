"""The pstfast exception tree.

The split between terminal and transient errors is what every retry policy keys on
(the local runner and the Step Functions state machine alike)::

    PstfastError
    ├── InputError            terminal: retrying cannot help; the input must change
    │   ├── NotAPstError      not a PST at all (wrong magic, 0 bytes, an OST, ...)
    │   ├── CorruptPstError   a PST whose header or B-trees cannot be read
    │   ├── ManifestError     an output folder whose manifest/checksums do not verify
    │   └── UsageError        bad arguments (negative counts, unwritable paths, ...)
    │       └── MissingDependencyError   an optional extra is not installed
    └── TransientError        retry with backoff: storage, network, database
        ├── StorageError      S3 / filesystem I/O failed
        ├── DatabaseError     PostgreSQL unavailable or the connection dropped
        └── WorkerDiedError   an extract worker process died (OOM killer, SIGKILL)

Every message says what failed, where, and what to do about it. :func:`exit_code` maps an
exception to the command line's exit code; anything that is not a :class:`PstfastError`
is a bug (exit 1).
"""

from __future__ import annotations

#: exit codes of the ``pstfast`` command (sysexits.h where one fits)
EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 65  # EX_DATAERR
EXIT_TRANSIENT = 75  # EX_TEMPFAIL
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class PstfastError(Exception):
    """Base of every error pstfast raises on purpose."""

    #: stable, machine-readable kind written to manifests, logs and pst_files.error
    kind = "error"
    #: False: retrying is pointless (bad input); True: retry with backoff
    retryable = False


class InputError(PstfastError):
    """The input is bad; retrying will not help."""

    kind = "input"


class NotAPstError(InputError):
    """The file is not a PST (empty, wrong signature, unsupported variant)."""

    kind = "not_a_pst"


class CorruptPstError(InputError):
    """A PST whose file-level structures (header, B-trees) cannot be read."""

    kind = "corrupt_pst"


class ManifestError(InputError):
    """An output folder whose manifest is missing or does not match its objects."""

    kind = "manifest"


class UsageError(InputError):
    """Bad arguments: the caller must change the call."""

    kind = "usage"


class TransientError(PstfastError):
    """A failure that may pass: retry with backoff."""

    kind = "transient"
    retryable = True


class StorageError(TransientError):
    """Reading or writing local files or S3 objects failed."""

    kind = "storage"


class DatabaseError(TransientError):
    """PostgreSQL was unreachable or the connection dropped."""

    kind = "database"


class WorkerDiedError(TransientError):
    """An extract worker process died (killed by a signal or the OOM killer): not the PST's fault."""

    kind = "worker_died"


class ExtractRunningError(TransientError):
    """The PST's output folder is being rewritten by an extract: a load can succeed once it is done."""

    kind = "extract_running"


class ItemBudgetExceeded(BaseException):
    """One item took longer to read than ``PSTFAST_ITEM_SECONDS``, or a value of it is larger
    than ``PSTFAST_ITEM_MAX_MB``: the extract records it as an error row and goes on.

    A BaseException, as the timer's interruption must not be caught by a handler of ordinary
    errors inside the reader (which would go on reading the item unbounded)."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed: the message names the extra to install."""

    kind = "missing_dependency"


def exit_code(exc: BaseException) -> int:
    """The ``pstfast`` exit code for *exc*: 2 usage, 65 bad input, 75 transient, 1 a bug."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, TransientError):
        return EXIT_TRANSIENT
    return EXIT_BUG
