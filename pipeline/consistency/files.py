"""The gallery's file-reference check: every photo's `file_ref` must name a row of
`files`, a file on disk under the storage directory, and bytes whose sha256 is the
recorded one.

Reading every file's bytes on every run does not fit a release's analysis interval
(100,000 photos), so the check is layered:
- every reference, every run: the `files` row exists (an anti-join in SQL that
  returns only the broken references) and the file exists, from one listing of the
  storage directory's entries (walked while the query runs, no stat per file); a
  reference the listing does not show (a file written after the walk, a path through
  a symlinked directory) is stat'ed on its own, so a missing file is always found;
- sizes: each file is stat'ed on its first run and then in rotation (STAT_SLICE per
  run), since one stat per file per run was most of a run's time; a file truncated in
  place is found within (files / STAT_SLICE) runs;
- checksums are kept per worker process: a file whose (size, mtime, recorded sha256)
  was hashed and matched is not read again while that stays the same; every file that
  is new or changed since it was last hashed is hashed, newest first (the files a
  canary just wrote come first), up to HASH_BUDGET_FILES per run; a cold worker works
  through the backlog over the next runs and the detail says how many still wait;
- a random sample of already-verified files is re-hashed each run, which catches bytes
  changed behind an unchanged size and mtime (bit rot, a restored mtime).

Photo counts per broken reference are asked of the database only for the references
found broken, so a clean run moves one row per referenced file and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline.consistency.base import DEFAULT_TIMEOUT_SECONDS, Counted, measured, read_only
from pipeline.models.migration import CheckOutcome

HASH_BUDGET_FILES = 2000
RESAMPLE_FILES = 200
EXAMPLES = 3

WITHOUT_ROW_SQL = """
SELECT p.file_ref, count(*)
FROM photos p
WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.ref = p.file_ref)
GROUP BY p.file_ref
ORDER BY p.file_ref
"""
"""Photos per reference that has no `files` row: zero rows on a clean gallery."""

REFERENCED_FILES_SQL = """
SELECT f.ref, f.size, f.sha256
FROM files f
WHERE EXISTS (SELECT 1 FROM photos p WHERE p.file_ref = f.ref)
"""
"""Each referenced file once (not once per photo), with what the disk is compared to."""

PHOTO_COUNTS_SQL = "SELECT file_ref, count(*) FROM photos WHERE file_ref = ANY(%s) GROUP BY file_ref"

FileState = tuple[int, int, str]
"""What a checksum verified: the file's size, its mtime (ns) and the recorded sha256."""

Pending = tuple[str, FileState]
"""A file that passed the size check: its ref and its current state."""

STAT_SLICE = 10_000
"""Files whose size and mtime are read again each run, in rotation: every file is stat'ed
on its first run and then every (referenced files / STAT_SLICE) runs, so a file changed
in place is seen within that many runs; a missing file is seen on every run, from the
directory listing."""


@dataclass
class Reference:
    ref: str
    sha256: str | None
    size: int | None
    photos: int


@dataclass
class Findings:
    """Photos per kind of problem, with a few example refs for the operator."""

    photos: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    awaiting_checksum: int = 0

    def add(self, problem: str, reference: Reference) -> None:
        self.photos[problem] = self.photos.get(problem, 0) + reference.photos
        if len(self.examples) < EXAMPLES:
            self.examples.append(reference.ref)

    def counted(self) -> Counted:
        violations = sum(self.photos.values())
        problems = ", ".join(f"{count} {problem}" for problem, count in self.photos.items()) or "none"
        detail = f"{violations} photos with a broken file reference ({problems})"
        if self.examples:
            detail += f"; e.g. {', '.join(self.examples)}"
        if self.awaiting_checksum:
            detail += f"; {self.awaiting_checksum} files not yet checksummed (hashed over the next runs)"
        return violations, detail


@dataclass
class Candidate:
    reference: Reference
    path: str
    state: FileState


class FileReferences:
    """Stateful per worker: remembers which files' bytes were verified (see module doc)."""

    name = "gallery.file_references"

    def __init__(self, files_dir: str | Path | None, hash_budget: int = HASH_BUDGET_FILES,
                 resample: int = RESAMPLE_FILES, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS):
        self.files_dir = str(Path(files_dir).resolve()) if files_dir is not None else None
        """None (no storage directory configured, e.g. on Kubernetes): only the `files` rows are checked."""
        self.hash_budget = hash_budget
        self.resample = resample
        self.timeout_seconds = timeout_seconds
        self._verified: dict[str, FileState] = {}
        self._sized: dict[str, tuple[int, int]] = {}
        """(size, mtime ns) of each file when it was last stat'ed."""
        self._turn = 0
        self._random = random.Random()

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        return measured(self.name, lambda: self._count(connection))

    def _count(self, connection: psycopg.Connection) -> Counted:
        findings = Findings()
        if self.files_dir is None:
            with read_only(connection, self.timeout_seconds) as cursor:
                self._without_row(cursor, findings)
            return findings.counted()
        if not os.path.isdir(self.files_dir):
            raise OSError(f"the storage directory {self.files_dir} does not exist")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="files-listing") as pool:
            listing = pool.submit(_list_names, self.files_dir)
            with read_only(connection, self.timeout_seconds) as cursor:
                self._without_row(cursor, findings)
                cursor.execute(REFERENCED_FILES_SQL)
                rows: list[tuple[str, int, str]] = cursor.fetchall()
            unverified, verified, broken = self._compare(rows, listing.result())
        if broken:
            self._add_broken(connection, broken, findings)
        unverified.sort(key=lambda candidate: candidate[1][1], reverse=True)
        to_hash = [Candidate(Reference(ref, state[2], state[0], 0), os.path.join(self.files_dir, ref), state)
                   for ref, state in unverified[: self.hash_budget]
                   + self._random.sample(verified, min(self.resample, len(verified)))]
        findings.awaiting_checksum = max(0, len(unverified) - self.hash_budget)
        problems = {candidate.reference.ref: problem for candidate in to_hash
                    if (problem := self._bytes_problem(candidate)) is not None}
        if problems:
            self._add_broken(connection, problems, findings)
        return findings.counted()

    @staticmethod
    def _without_row(cursor: psycopg.Cursor, findings: Findings) -> None:
        cursor.execute(WITHOUT_ROW_SQL)
        for ref, photos in cursor.fetchall():
            findings.add("not in the files table", Reference(ref, None, None, photos))

    def _compare(self, rows: list[tuple[str, int, str]],
                 names: set[str]) -> tuple[list[Pending], list[Pending], dict[str, str]]:
        """Find every missing file, and the wrong sizes of the files stat'ed this run
        (each file on its first run, then in rotation: STAT_SLICE); split
        the rest into files whose bytes need hashing and files verified in their current
        state (plain tuples: this loop runs once per referenced file)."""
        unverified: list[Pending] = []
        verified: list[Pending] = []
        broken: dict[str, str] = {}
        known_states = self._verified
        turns = max(1, -(-len(rows) // STAT_SLICE))
        self._turn = turn = (self._turn + 1) % turns
        sized = self._sized
        for ref, size, sha256 in rows:
            listed = ref in names  # a listed path is plain and inside the directory by construction
            seen = sized.get(ref) if listed and hash(ref) % turns != turn else None
            if seen is None:
                path = os.path.join(self.files_dir, ref) if listed else self._path(ref)
                seen = _stat(path) if path is not None else None
                if seen is None:
                    sized.pop(ref, None)
                    broken[ref] = "missing on disk"
                    continue
                sized[ref] = seen
            if seen[0] != size:
                broken[ref] = "of the wrong size"
                continue
            state = (size, seen[1], sha256)
            (verified if known_states.get(ref) == state else unverified).append((ref, state))
        return unverified, verified, broken

    def _add_broken(self, connection: psycopg.Connection, broken: dict[str, str], findings: Findings) -> None:
        """Count the photos of each broken reference (few, and asked only when there are)."""
        with read_only(connection, self.timeout_seconds) as cursor:
            cursor.execute(PHOTO_COUNTS_SQL, (sorted(broken),))
            photos = dict(cursor.fetchall())
        for ref in sorted(broken):
            findings.add(broken[ref], Reference(ref, None, None, photos.get(ref, 0)))

    def _path(self, ref: str) -> str | None:
        """The file of `ref` under the storage directory; None for a ref that points
        outside it (which no upload can have written). Checked on the text, without
        resolving."""
        if ref.startswith("/") or "" in (parts := ref.split("/")) or "." in parts or ".." in parts:
            return None
        return os.path.join(self.files_dir, ref)

    def _bytes_problem(self, candidate: Candidate) -> str | None:
        """None when the bytes hash to the recorded sha256 (remembered), else what is wrong."""
        self._verified.pop(candidate.reference.ref, None)
        try:
            with open(candidate.path, "rb") as file:
                actual = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError:
            return "missing on disk"
        if actual != candidate.reference.sha256:
            return "with a checksum mismatch"
        self._verified[candidate.reference.ref] = candidate.state
        return None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _list_names(root: str) -> set[str]:
    """Every regular file under the storage directory, by its path relative to `root`,
    from directory entries alone (no stat: one per file is what made a run over 100,000
    photos take over a second). Symlinked directories are not entered; their files are
    stat'ed one by one when referenced. A directory that vanishes mid-walk is skipped."""
    names: set[str] = set()
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((prefix + entry.name + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        names.add(prefix + entry.name)
                except OSError:
                    continue
    return names
