"""The gallery's file-reference check: every photo's `file_ref` must name a row of
`files`, a file on disk under the storage directory, and bytes whose sha256 is the
recorded one.

Reading every file's bytes on every run does not fit a release's analysis interval
(100,000 photos), so the check is layered:
- every reference, every run: the `files` row exists, the file exists and its size is
  the recorded size (one stat per file) — a missing or truncated file is always found;
- checksums are kept per worker process: a file whose (size, mtime, recorded sha256)
  was hashed and matched is not read again while that stays the same; every file that
  is new or changed since it was last hashed is hashed, newest first (the files a
  canary just wrote come first), up to HASH_BUDGET_FILES per run; a cold worker works
  through the backlog over the next runs and the detail says how many still wait;
- a random sample of already-verified files is re-hashed each run, which catches bytes
  changed behind an unchanged size and mtime (bit rot, a restored mtime).
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline.consistency.base import DEFAULT_TIMEOUT_SECONDS, Counted, measured, read_only
from pipeline.models.migration import CheckOutcome

HASH_BUDGET_FILES = 2000
RESAMPLE_FILES = 200
EXAMPLES = 3

REFERENCES_SQL = """
SELECT p.file_ref, f.sha256, f.size, count(*)
FROM photos p LEFT JOIN files f ON f.ref = p.file_ref
GROUP BY p.file_ref, f.sha256, f.size
"""

FileState = tuple[int, int, str]
"""What a checksum verified: the file's size, its mtime (ns) and the recorded sha256."""


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
        self._random = random.Random()

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        return measured(self.name, lambda: self._count(connection))

    def _count(self, connection: psycopg.Connection) -> Counted:
        if self.files_dir is not None and not os.path.isdir(self.files_dir):
            raise OSError(f"the storage directory {self.files_dir} does not exist")
        findings = Findings()
        unverified, verified = self._cheap_pass(self._references(connection), findings)
        unverified.sort(key=lambda candidate: candidate.state[1], reverse=True)
        to_hash = unverified[: self.hash_budget] + self._random.sample(verified, min(self.resample, len(verified)))
        findings.awaiting_checksum = max(0, len(unverified) - self.hash_budget)
        for candidate in to_hash:
            self._verify_bytes(candidate, findings)
        return findings.counted()

    def _references(self, connection: psycopg.Connection) -> list[Reference]:
        with read_only(connection, self.timeout_seconds) as cursor:
            cursor.execute(REFERENCES_SQL)
            return [Reference(*row) for row in cursor]

    def _cheap_pass(self, references: list[Reference], findings: Findings) -> tuple[list[Candidate], list[Candidate]]:
        """Find every problem that a stat shows; split the rest into files whose bytes
        need hashing and files already verified in their current state."""
        unverified: list[Candidate] = []
        verified: list[Candidate] = []
        for reference in references:
            candidate = self._candidate(reference, findings)
            if candidate is None:
                continue
            known = self._verified.get(reference.ref) == candidate.state
            (verified if known else unverified).append(candidate)
        return unverified, verified

    def _candidate(self, reference: Reference, findings: Findings) -> Candidate | None:
        if reference.sha256 is None:
            findings.add("not in the files table", reference)
            return None
        if self.files_dir is None:
            return None
        path = self._path(reference.ref)
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        if stat is None:
            findings.add("missing on disk", reference)
            return None
        if stat.st_size != reference.size:
            findings.add("of the wrong size", reference)
            return None
        return Candidate(reference, path, (stat.st_size, stat.st_mtime_ns, reference.sha256))

    def _path(self, ref: str) -> str | None:
        """The file of `ref` under the storage directory; None for a ref that points
        outside it (which no upload can have written). Checked on the text, without
        resolving: one stat per file is the whole budget of the cheap pass."""
        parts = ref.split("/")
        if ref.startswith("/") or any(part in ("", ".", "..") for part in parts):
            return None
        return os.path.join(self.files_dir, ref)

    def _verify_bytes(self, candidate: Candidate, findings: Findings) -> None:
        try:
            with open(candidate.path, "rb") as file:
                actual = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError:
            findings.add("missing on disk", candidate.reference)
            return
        if actual == candidate.reference.sha256:
            self._verified[candidate.reference.ref] = candidate.state
        else:
            self._verified.pop(candidate.reference.ref, None)
            findings.add("with a checksum mismatch", candidate.reference)
