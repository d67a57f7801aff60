"""The extract stage (``pstfast.extract``): one PST -> NDJSON + CSV + Parquet + attachments + manifest.

The module is named ``extractor`` so that importing it never shadows the public
function ``pstfast.extract``.

Steps: fetch the input (S3 sources are copied to scratch: the reader memory-maps a local
file), hash it while planning shards from its folder tables and starting the workers, run
the shards on a process pool (spawn-safe: every worker opens its own reader), merge each
finished shard's part files in shard order while the others run, then publish the objects
and write ``manifest.json`` last.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import (
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from .. import config, ids, storage
from .._version import __version__
from ..errors import InputError, StorageError, UsageError, WorkerDiedError
from ..log import Progress
from ..manifest import MANIFEST_NAME, Manifest, clear_running, mark_running, write_manifest
from ..records import ATTACHMENT_FIELDS, EMAIL_COLUMNS, EMAIL_FIELDS, FOLDER_COLUMNS, FOLDER_FIELDS, folder_path_text
from . import exchange
from .items import (
    FolderInfo,
    ItemReader,
    check_signature,
    decide_codepage,
    libpff_version,
    list_folders,
)
from .plan import Shard, plan_shards, summary
from .pool import context as pool_context
from .pool import prestart
from .pool import stop as stop_pool
from .worker import (
    PREREAD_SHARDS,
    Destination,
    ShardRead,
    ShardResult,
    WorkerContext,
    few_collections,
    init_pool_worker,
    init_worker,
    part_path,
    read_shard,
    run_shards,
    write_deferred,
    write_shard,
)
from .writers import (
    PARQUET_ROW_GROUP,
    ParquetMerger,
    arrow_tables,
    csv_header_member,
    csv_lines,
    gzip_bytes,
    ndjson_lines,
)

log = logging.getLogger(__name__)
EXTRACTOR_VERSION = f"pstfast-extract {__version__}"
#: merged objects, in the order they are listed (attachments/<sha256> follow)
OBJECTS = ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet", "attachments.csv.gz",
           "attachments.ndjson.gz", "errors.ndjson", "folders.ndjson.gz", "folders.csv.gz", "folders.parquet")


@dataclass(frozen=True)
class _Input:
    local: Path
    sha256: str
    size: int
    name: str


def extract(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    pst_file_id: str | None = None,
    project_id: str | None = None,
    workers: int | None = None,
    scratch: str | os.PathLike[str] | None = None,
    items_per_shard: int | None = None,
    progress: bool | None = None,
    reader: str | None = None,
    codepage: int | None = None,
) -> Manifest:
    """Extract one PST (local path or ``s3://`` URL) into ``<out>/pst-v2/<pst_file_id>/``.

    Returns the manifest, which is written last. File-level problems raise an
    :class:`~pstfast.errors.InputError` (bad input) or :class:`~pstfast.errors.StorageError`;
    item-level damage goes to ``errors.ndjson``. ``items_per_shard`` overrides the planner's
    shard size (tests use it to get many shards from a small PST). ``reader``: ``pstfast``
    (default; or ``PSTFAST_READER``) or ``libpff``, which reads every item with pypff
    instead: slower (libpff's open is quadratic in the item count), the same output bytes.
    ``codepage`` (or ``PSTFAST_CODEPAGE``): the code page of ANSI strings that name none of
    their own, instead of the one decided from the file (the manifest's ``extra.codepage``).

    Raises:
        NotAPstError: the input is not a PST (or is empty, or missing).
        CorruptPstError: its header or B-trees cannot be read.
        UsageError: invalid arguments or identifiers, or *out* is not writable.
        StorageError: reading the input or writing the output failed (transient).
        WorkerDiedError: an extract worker process was killed (transient).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    running: str | None = None  # the output prefix while this extract rewrites it
    source, out = str(source), str(out)
    n_workers = config.workers(workers)
    engine = config.reader(reader)
    codepage_override = config.codepage(codepage)
    budget = config.item_budget()
    # None: "auto", decided by the processes that read (asking needs numba, which this one
    # only loads when it reads items itself)
    compiled: bool | None = config.compiled_reader_setting() if engine == "pstfast" else False
    if n_workers < 1:
        raise UsageError(f"workers must be 1 or more, got {n_workers}")
    if pst_file_id is not None:
        ids.check_identifier(pst_file_id, "pst_file_id")
    if project_id is not None:
        ids.check_identifier(project_id, "project_id")
    storage.check_writable(out)
    if storage.is_s3(source):
        prestart(n_workers)  # the pool's imports overlap the download
    scratch_root = config.scratch(scratch)
    try:
        scratch_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="pstfast-extract-", dir=scratch_root))
    except OSError as exc:
        raise StorageError(f"{scratch_root}: cannot create scratch folder: {exc.strerror or exc}") from exc
    try:
        t = time.perf_counter()
        local, name = _fetch(source, work)
        timings["fetch"] = time.perf_counter() - t

        # hash the input (hashlib releases the GIL) while we plan and the workers start
        # reading: they need the pst_file_id only once their first items are read, and only
        # wait for the hash when it is the id (no pst_file_id given); the manifest needs it last
        hasher = ThreadPoolExecutor(1)
        pool: ProcessPoolExecutor | None = None
        destination: Destination | None = None
        futures: dict[Future[list[ShardResult]], list[Shard]] = {}
        preread: dict[int, ShardRead] = {}
        item_reader: ItemReader | None = None
        merger: _Merger | None = None
        try:
            hashing = hasher.submit(_hash, source, local)
            t = time.perf_counter()
            check_signature(local)
            if compiled and (seconds := _ensure_compiled()):
                timings["compile"] = seconds
            # the plan needs the folders only: no compiled code here unless this process reads
            item_reader = ItemReader(local)
            folders, folder_failures = list_folders(item_reader)
            codepage, codepage_source = decide_codepage(item_reader, folders, codepage_override)
            if codepage != item_reader.default_codepage:  # folder names were decoded with another
                item_reader.default_codepage = codepage
                folders, folder_failures = list_folders(item_reader)
            shards = plan_shards(folders, items_per_shard)
            n_workers = min(n_workers, max(len(shards), 1))
            log.info("extract %s: %d items in %d folders, %d shards, %d worker(s)", name,
                     sum(sh.items for sh in shards), len(folders), len(shards), n_workers)
            parts = work / "parts"
            parts.mkdir()
            item_seconds, item_max_bytes = budget
            ctx = WorkerContext(str(local), pst_file_id or "", project_id, str(parts), "", EXTRACTOR_VERSION, engine,
                                item_seconds, item_max_bytes)
            if n_workers > 1:
                item_reader.close()  # workers open their own readers; none crosses a process boundary
                item_reader = None
                pool, destination = _start_pool(str(local), n_workers, engine, compiled, codepage)
                futures = {pool.submit(run_shards, ctx, task): task for task in _tasks(shards, n_workers)}
            elif compiled is not False:  # this process reads the items: with the compiled path
                item_reader.close()
                item_reader = None  # closed: not again below should reopening fail
                item_reader = ItemReader(local, compiled=config.resolve_compiled_reader(compiled), codepage=codepage)
            timings["plan"] = time.perf_counter() - t
            t = time.perf_counter()
            if not futures:  # one worker, this process: it too reads its first shards while the input is hashed
                init_worker(str(local), None, item_reader, engine)
                with few_collections():
                    preread = {shard.index: read_shard(ctx, shard) for shard in shards[:PREREAD_SHARDS]}
            if pst_file_id is None:  # the default id is the input's hash, and every row's ids derive from it
                pst_file_id = ids.default_pst_file_id(hashing.result()[0])
            timings["hash_wait"] = time.perf_counter() - t
            prefix = storage.output_prefix(out, pst_file_id)

            stage = Path(prefix) if not storage.is_s3(prefix) else work / "out"
            _prepare_stage(stage, prefix)
            running = prefix  # marked until the new manifest is written (see manifest.RUNNING_NAME)
            ctx = replace(ctx, pst_file_id=pst_file_id, attachments_dir=str(stage / "attachments"))
            if destination is not None:
                destination.publish(ctx.pst_file_id, ctx.attachments_dir)

            write_folders(stage, folders, pst_file_id, project_id)
            t = time.perf_counter()
            bar = Progress(sum(s.items for s in shards), enabled=progress is not False)
            merger = _Merger(parts, stage, folder_failures, pst_file_id)
            with few_collections():
                results = _run(ctx, shards, bar, merger, futures, preread, pool)
            bar.close()
            timings["extract"] = time.perf_counter() - t
            pst_input = _Input(local, *hashing.result(), name)  # for the manifest only, given an id
        except BaseException as exc:
            if destination is not None:
                destination.abort(f"{type(exc).__name__}: {exc}")
            if pool is not None:  # interrupted or failed: the workers stop now, not after their shards
                stop_pool(pool)
            if merger is not None:
                merger.abandon()
            raise
        finally:
            if item_reader is not None:  # the in-process worker's reader (workers close their own)
                item_reader.close()
            hasher.shutdown(wait=True)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

        t = time.perf_counter()
        merger.close()
        objects = _inventory(stage, merger.entries(), results)
        timings["merge"] = time.perf_counter() - t

        # an unreadable folder: as many error items as it said it held (one when that is
        # unknowable too, counted again in folders_unreadable)
        lost = sum(f["items"] if f.get("items") is not None else 1 for f in folder_failures)
        errors = sum(r.errors for r in results) + lost
        counts = {
            "folders": len(folders),
            "items_seen": sum(r.items_seen for r in results) + lost,
            "emails": sum(r.emails for r in results),
            "attachments": sum(r.attachments for r in results),
            "errors": errors,
            "warnings": sum(r.warnings for r in results),
            "attachment_objects": sum(1 for k in objects if k.startswith("attachments/")),
            "folders_unreadable": sum(1 for f in folder_failures if "items" in f),
            "folders_uncounted": sum(1 for f in folder_failures if "items" in f and f["items"] is None),
        }
        if counts["items_seen"] != counts["emails"] + counts["errors"]:
            raise RuntimeError(f"counts do not reconcile: {counts}")  # a bug, never bad input

        t = time.perf_counter()
        if storage.is_s3(prefix):
            _upload(stage, prefix, objects)
        timings["upload"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        manifest = Manifest(
            pst_file_id=pst_file_id,
            project_id=project_id,
            source=source,
            input={"name": pst_input.name, "sha256": pst_input.sha256, "size": pst_input.size},
            counts=counts,
            timings={k: round(v, 6) for k, v in timings.items()},
            objects=objects,
            extractor_version=EXTRACTOR_VERSION,
            libpff_version=libpff_version(),
            workers=n_workers,
            shards=summary(shards),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            extra={"reader": engine, "compiled_reader": bool(results) and all(r.compiled for r in results),
                   "codepage": {"default": codepage, "source": codepage_source}},
        )
        write_manifest(prefix, manifest)
        return manifest
    finally:
        if running is not None:  # done (the manifest is there) or given up: no longer rewriting
            try:
                clear_running(running)
            except StorageError as exc:
                log.warning("could not remove the running marker: %s", exc)
        shutil.rmtree(work, ignore_errors=True)


def folder_rows(folders: Sequence[FolderInfo], pst_file_id: str, project_id: str | None) -> list[dict[str, Any]]:
    """One row per readable folder (FOLDER_FIELDS), in walk order, ids from node ids.

    ``path`` is unambiguous: each name's ``\\`` and ``/`` are escaped with ``\\``
    (:func:`~pstfast.records.folder_path_text`), and the second, third... sibling of the same
    name ends in ``\\2``, ``\\3``... (in hierarchy-table order). Read left to right, ``\\\\``
    is a backslash, ``\\/`` a slash, ``\\`` and digits the ordinal: no two folders share a path."""
    paths: dict[int, str] = {}
    taken: dict[tuple[int | None, str], int] = {}
    rows = []
    for f in folders:
        name = f.names[-1] if f.names else ""
        if f.parent_id is not None and f.parent_id in paths:
            n = taken[(f.parent_id, name)] = taken.get((f.parent_id, name), 0) + 1
            segment = folder_path_text([name]) + (f"\\{n}" if n > 1 else "")
            parent_path = paths[f.parent_id]
            path = f"{parent_path}/{segment}" if parent_path else segment
        else:
            path = folder_path_text(f.names)
        paths[f.node_id] = path
        rows.append({
            "folder_id": ids.folder_id(pst_file_id, f.node_id),
            "parent_folder_id": ids.folder_id(pst_file_id, f.parent_id) if f.parent_id is not None else None,
            "project_id": project_id,
            "pst_file_id": pst_file_id,
            "name": name,
            "path": path,
            "container_class": f.container_class,
            "item_count": f.item_count,
            "unread_count": f.unread_count,
        })
    return rows


def write_folders(stage: Path, folders: Sequence[FolderInfo], pst_file_id: str, project_id: str | None) -> None:
    """folders.ndjson.gz, folders.csv.gz and folders.parquet (small: written in one go)."""
    rows = folder_rows(folders, pst_file_id, project_id)
    try:
        (stage / "folders.ndjson.gz").write_bytes(gzip_bytes(ndjson_lines(rows, FOLDER_FIELDS)))
        parquet, csv = arrow_tables(rows, FOLDER_COLUMNS)
        (stage / "folders.csv.gz").write_bytes(csv_header_member(FOLDER_FIELDS) + gzip_bytes(csv_lines(csv)))
        merger = ParquetMerger(stage / "folders.parquet", FOLDER_COLUMNS)
        merger.writer.write_table(parquet, row_group_size=PARQUET_ROW_GROUP)
        merger.rows = len(rows)
        merger.close()
    except OSError as exc:
        raise StorageError(f"{stage}: writing the folders failed: {exc.strerror or exc}") from exc


def _fetch(source: str, work: Path) -> tuple[Path, str]:
    """A local, seekable copy of the input and its file name."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if storage.is_s3(source):
        return storage.download(source, work / "input.pst"), name
    local = Path(source)
    if not local.exists():
        raise InputError(f"{source}: no such file")
    if not local.is_file():
        raise InputError(f"{source}: not a file")
    return local, name


def _hash(source: str, local: Path) -> tuple[str, int]:
    """sha256 and size of the input."""
    try:
        return ids.file_sha256(local), local.stat().st_size
    except OSError as exc:
        raise StorageError(f"{source}: cannot read: {exc.strerror or exc}") from exc


def _prepare_stage(stage: Path, prefix: str) -> None:
    """Create the staging folder; an old manifest goes first so a crash cannot look complete,
    and a marker says an extract is rewriting the folder (a load meanwhile retries)."""
    try:
        old = stage / MANIFEST_NAME
        if old.exists():
            old.unlink()
        (stage / "attachments").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{prefix}: output folder is not writable: {exc.strerror or exc}") from exc
    mark_running(prefix, {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "host": socket.gethostname(), "pid": os.getpid()})
    if storage.is_s3(prefix):
        storage.remove(storage.join(prefix, MANIFEST_NAME))


def _ensure_compiled() -> float:
    """Compile the reader here, once, when it is wanted but not in numba's cache yet
    (``PSTFAST_COMPILED_READER=1``): every worker would otherwise compile it for itself.
    Returns the seconds spent (0 when the cache held it)."""
    from ..pst import compiled

    if compiled.cache_ready():
        return 0.0
    log.info("compiling the PST reader with numba (first run only, 15-60 s; `pstfast warm-up` does it ahead)")
    return compiled.warm_up()


def _start_pool(pst_path: str, n_workers: int, engine: str, compiled: bool | None,
                codepage: int) -> tuple[ProcessPoolExecutor, Destination]:
    """A pool of *n_workers* processes (each opens the PST once), and the channel through
    which they learn the destination once the input's hash is known."""
    context = pool_context()
    destination = Destination(context)
    pool = ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_pool_worker,
                               initargs=(pst_path, destination, None, engine, compiled, codepage))
    return pool, destination


def _tasks(shards: Sequence[Shard], n_workers: int) -> list[list[Shard]]:
    """The pool's tasks, in shard order: each worker's first holds PREREAD_SHARDS shards
    (read while the input is hashed), the rest one each. Grouping changes no output byte:
    every shard still writes its own parts."""
    first = n_workers * PREREAD_SHARDS
    head = [list(shards[i:i + PREREAD_SHARDS]) for i in range(0, min(first, len(shards)), PREREAD_SHARDS)]
    return head + [[shard] for shard in shards[first:]]


def _run(ctx: WorkerContext, shards: Sequence[Shard], bar: Progress, merger: _Merger,
         futures: dict[Future[list[ShardResult]], list[Shard]], preread: dict[int, ShardRead],
         pool: ProcessPoolExecutor | None) -> list[ShardResult]:
    """Collect the tasks submitted to *pool* (*futures*), or run the shards in this process
    (the ones in *preread* already read); merge finished shards in shard order meanwhile.

    A shard with Exchange DNs to resolve comes back deferred (read, not written); once every
    shard is read, the file's address map is known and those shards are written with it (see
    :mod:`.exchange`). Shards after a deferred one are merged after it."""
    results: dict[int, ShardResult] = {}
    merged = 0

    def merge_ready() -> None:
        nonlocal merged
        while merged < len(shards) and merged in results and not results[merged].deferred:
            merger.add(merged)
            merged += 1

    try:
        if not futures:
            for shard in shards:
                read = preread.pop(shard.index) if shard.index in preread else read_shard(ctx, shard)
                results[shard.index] = write_shard(ctx, shard, read)
                bar.update(shard.items)
                merge_ready()
        else:
            for future in as_completed(futures):
                for result in future.result():
                    results[result.index] = result
                bar.update(sum(shard.items for shard in futures[future]))
                merge_ready()  # the main process merges while the workers read
        deferred = [shard for shard in shards if results[shard.index].deferred]
        if deferred:
            pairs: exchange.Pairs = sum((r.address_pairs for r in results.values()), Counter())
            address_map = exchange.build(pairs)
            log.info("extract: %d of %d shards hold Exchange addresses to resolve (%d DNs mapped); "
                     "writing them with the file's map", len(deferred), len(shards), len(address_map))
            maps = {shard.index: exchange.subset(address_map, results[shard.index].needs) for shard in deferred}
            if pool is None:
                for result in write_deferred(ctx, [(shard, maps[shard.index]) for shard in deferred]):
                    results[result.index] = result
            else:
                again = [pool.submit(write_deferred, ctx, [(shard, maps[shard.index])]) for shard in deferred]
                for future in as_completed(again):
                    for result in future.result():
                        results[result.index] = result
            merge_ready()
    except BrokenProcessPool as exc:
        # the OOM killer or a SIGKILL, not the file: a retry on a roomier host can succeed
        raise WorkerDiedError(f"{ctx.pst_path}: an extract worker process died ({exc}); retry, "
                              "with more memory or fewer workers if it recurs") from exc
    except OSError as exc:
        raise StorageError(f"writing part files failed: {exc}") from exc
    return [results[s.index] for s in shards]


class _HashedFile:
    """An output file that hashes what is written to it: its manifest entry without reading
    it again at the end, when the workers are done and nothing else runs."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        self.handle.close()


class _Merger:
    """Appends each shard's part files, in shard order, to the final objects."""

    def __init__(self, parts: Path, stage: Path, folder_failures: list[dict[str, Any]], pst_file_id: str) -> None:
        self.parts = parts
        try:
            self.files = {name: _HashedFile(stage / name) for name in
                          ("emails.ndjson.gz", "emails.csv.gz", "attachments.ndjson.gz", "attachments.csv.gz",
                           "errors.ndjson")}
            self.files["emails.csv.gz"].write(csv_header_member(EMAIL_FIELDS))
            self.files["attachments.csv.gz"].write(csv_header_member(ATTACHMENT_FIELDS))
            for failure in folder_failures:
                # one error row per item counted: a folder whose contents are unreadable has
                # one for each item it said it held (they have no ids: their index instead)
                indexes: list[int | None] = list(range(failure["items"])) if failure.get("items") else [None]
                for index in indexes:
                    self.files["errors.ndjson"].write(orjson.dumps({
                        "pst_file_id": pst_file_id, "severity": "error", "kind": "folder",
                        "folder_path": failure["folder_path"], "item_index": index, "email_id": None,
                        "ordinal": None, "reason": failure["error"]}) + b"\n")
            self.parquet = ParquetMerger(stage / "emails.parquet", EMAIL_COLUMNS)
        except OSError as exc:
            raise StorageError(f"{stage}: writing the output failed: {exc.strerror or exc}") from exc

    def add(self, index: int) -> None:
        try:
            for name, dst in self.files.items():
                part = part_path(self.parts, index, name)
                if part.exists():
                    dst.write(part.read_bytes())  # a shard's part: a few MB
                    part.unlink()
            arrow = part_path(self.parts, index, "emails.arrow")
            if arrow.exists():
                self.parquet.add(arrow)
                arrow.unlink()
        except OSError as exc:
            raise StorageError(f"writing the output failed: {exc.strerror or exc}") from exc

    def abandon(self) -> None:
        """Close the output files of a failed extract (no manifest will vouch for them)."""
        for dst in self.files.values():
            dst.close()
        self.parquet.writer.close()

    def close(self) -> None:
        try:
            for name in ("emails.ndjson.gz", "attachments.ndjson.gz"):
                if self.files[name].size == 0:  # no rows: still a valid (empty) gzip file
                    self.files[name].write(gzip_bytes(b""))
            for dst in self.files.values():
                dst.close()
            self.parquet.close()
        except OSError as exc:
            raise StorageError(f"writing the output failed: {exc.strerror or exc}") from exc

    def entries(self) -> dict[str, dict[str, object]]:
        """sha256 + size of the files this merger wrote (after :meth:`close`)."""
        return {name: {"sha256": f.digest.hexdigest(), "size": f.size} for name, f in self.files.items()}


def _inventory(stage: Path, merged: dict[str, dict[str, object]],
               results: Sequence[ShardResult]) -> dict[str, dict[str, object]]:
    """sha256 + size of every object: the merged files' as written, the Parquet file's read
    back, attachment objects' from their names (their sha256)."""
    objects: dict[str, dict[str, object]] = {}
    for name in OBJECTS:
        if name in merged:
            objects[name] = merged[name]
        else:
            sha, size = storage.sha256_and_size(stage / name)
            objects[name] = {"sha256": sha, "size": size}
    blobs: dict[str, int] = {}
    for result in results:
        blobs.update(result.objects)
    for sha in sorted(blobs):
        objects[f"attachments/{sha}"] = {"sha256": sha, "size": blobs[sha]}
    return objects


def _upload(stage: Path, prefix: str, objects: dict[str, dict[str, object]]) -> None:
    """Upload every object, ``PSTFAST_UPLOAD_CONCURRENCY`` (16) PUTs at a time, each retried
    with backoff; the manifest is written after this returns, so it is always the last object."""
    pairs = [(stage / key, storage.join(prefix, key)) for key in objects]
    retries = storage.upload_many(pairs, concurrency=config.upload_concurrency())
    if retries:
        log.info("upload: %d objects to %s, %d PUTs retried", len(pairs), prefix, retries)
