"""The pstfast exception tree.

The split between terminal and transient errors is what every retry policy keys on
(the local runner and the Step Functions state machine alike)::

    PstfastError
    ├── InputError            terminal: retrying cannot help; the input must change
    │   ├── NotAPstError      not a PST at all (wrong magic, 0 bytes, an OST, ...)
    │   ├── CorruptPstError   a PST whose header or B-trees cannot be read
    │   ├── ManifestError     an output folder whose manifest/checksums do not verify
    │   └── UsageError        bad arguments (negative counts, unwritable paths, ...)
    └── TransientError        retry with backoff: storage, network, database
        ├── StorageError      S3 / filesystem I/O failed
        └── DatabaseError     PostgreSQL unavailable or the connection dropped

Every message says what failed, where, and what to do about it.
"""

from __future__ import annotations


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
