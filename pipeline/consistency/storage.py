"""The storage directory as the file-reference check reads it: which files exist (from
directory entries alone), the size and mtime of a rotating slice of them, and the
sha256 of a file's bytes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

CHUNK_BYTES = 1 << 20
HASH_THREADS = 2
"""Reading and hashing release the GIL: two threads keep both cores of a small worker busy."""

Hashed = tuple[str | None, int]
"""What hashing a file found: the problem (None when the bytes match) and its mtime (ns)."""

SETTLED_NS = 2_000_000_000
"""A directory's listing is reused while the directory's mtime is unchanged, but only if
that mtime was this much older than the listing: file systems stamp mtimes from a coarse
clock, so an entry added or removed in the same tick as a listing may leave it unchanged."""

Seen = tuple[int, int] | None
"""A file's size and mtime (ns), None when it does not exist."""


@dataclass
class Survey:
    names: frozenset[str]
    """Every regular file, by its path relative to the directory."""
    seen: dict[str, Seen]
    """The size and mtime of this run's slice of `names`."""


@dataclass(frozen=True)
class Listing:
    """One directory's entries: its regular files and subdirectories, by their paths
    relative to the storage directory, and the directory's mtime when they were read
    (None when too recent to reuse them)."""

    mtime_ns: int | None
    files: frozenset[str]
    directories: tuple[str, ...]


class Storage:
    def __init__(self, files_dir: str | Path):
        self.root = str(Path(files_dir).resolve())
        self._prefix = self.root + os.sep
        self._listings: dict[str, Listing] = {}
        """The last walk's listing of each directory, by its relative path ("" or "a/b/")."""

    def ensure_exists(self) -> None:
        if not os.path.isdir(self.root):
            raise OSError(f"the storage directory {self.root} does not exist")

    def survey(self, run: int, stat_slice: int) -> Survey:
        """The listing, and a stat of every file in run `run`'s slice: the names whose hash
        falls in this turn of ceil(files / stat_slice) turns (Python's string hash is fixed
        for the life of the worker process, so turns rotate through every file)."""
        names = self.list_names()
        turns = max(1, -(-len(names) // stat_slice))
        turn = run % turns
        return Survey(names, {name: self.size_and_mtime(name) for name in names if hash(name) % turns == turn})

    def list_names(self) -> frozenset[str]:
        """Every regular file under the directory, by its path relative to it, from
        directory entries alone (one stat per file is what made a run over 100,000 photos
        take over a second), each directory's entries reused while its mtime is the same
        (see SETTLED_NS). Symlinked directories are not entered; their files are stat'ed
        one by one (`stat_unlisted`). A directory that vanishes mid-walk is skipped."""
        listings: dict[str, Listing] = {}
        pending = [""]
        while pending:
            prefix = pending.pop()
            if (listing := self._listing(prefix)) is not None:
                listings[prefix] = listing
                pending.extend(listing.directories)
        self._listings = listings
        files = [listing.files for listing in listings.values()]
        return files[0] if len(files) == 1 else frozenset().union(*files)

    def _listing(self, prefix: str) -> Listing | None:
        directory = self._prefix + prefix
        try:
            mtime = os.stat(directory).st_mtime_ns
        except OSError:
            return None
        cached = self._listings.get(prefix)
        if cached is not None and cached.mtime_ns == mtime:
            return cached
        started = time.time_ns()
        listing = _scan(directory, prefix, mtime)
        if listing is None or started - mtime > SETTLED_NS:
            return listing
        return replace(listing, mtime_ns=None)

    def stat_unlisted(self, unlisted: Iterable[str]) -> dict[str, Seen]:
        """References the listing did not show, each stat'ed on its own (a file written
        after the walk, a path through a symlinked directory exists); a ref that points
        outside the directory, which no upload can have written, does not."""
        return {ref: self.size_and_mtime(ref) if _inside(ref) else None for ref in unlisted}

    def size_and_mtime(self, ref: str) -> Seen:
        try:
            stat = os.stat(self._prefix + ref)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def hash_all(self, expected: dict[str, str]) -> dict[str, Hashed]:
        """Each file's bytes against its recorded "size sha256", over HASH_THREADS threads."""
        refs = list(expected)
        shares = [refs[start::HASH_THREADS] for start in range(HASH_THREADS)]
        with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="files-hash") as pool:
            hashed = pool.map(lambda share: {ref: self._hash(ref, *expected[ref].split()) for ref in share}, shares)
            return {ref: result for share in hashed for ref, result in share.items()}

    def _hash(self, ref: str, size: str, sha256: str) -> Hashed:
        digest = hashlib.sha256()
        try:
            descriptor = os.open(self._prefix + ref, os.O_RDONLY)
        except OSError:
            return "missing on disk", 0
        try:
            mtime = os.fstat(descriptor).st_mtime_ns
            read = 0
            while chunk := os.read(descriptor, CHUNK_BYTES):
                digest.update(chunk)
                read += len(chunk)
        except OSError:
            return "missing on disk", 0
        finally:
            os.close(descriptor)
        if read != int(size):
            return "of the wrong size", mtime
        return (None if digest.hexdigest() == sha256 else "with a checksum mismatch"), mtime


def _inside(ref: str) -> bool:
    """False for a ref that points outside the directory (which no upload can have
    written); checked on the text, without resolving."""
    parts = ref.split("/")
    return not ref.startswith("/") and not {"", ".", ".."} & set(parts)


def _scan(directory: str, prefix: str, mtime: int) -> Listing | None:
    files: list[str] = []
    directories: list[str] = []
    try:
        entries = os.scandir(directory)
    except OSError:
        return None
    with entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    files.append(prefix + entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    directories.append(prefix + entry.name + "/")
            except OSError:
                continue
    return Listing(mtime, frozenset(files), tuple(directories))
