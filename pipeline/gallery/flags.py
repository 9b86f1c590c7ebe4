"""Feature flags in the sample gallery, evaluated per request through OpenFeature.

The flags live in a flagd-format JSON file that the pipeline writes (the flag store of
issue #13); the local target tells each process where in FLAGS_FILE_VARIABLE. The
flagd provider's in-process FILE resolver reads it and re-reads it when it changes
(it checks the file's mtime every RELOAD_POLL_MS; the provider's default is 500 ms), so
turning a flag off needs no deploy. A file edited into invalid JSON or invalid flagd is
refused by the provider, and the last good flags keep serving; without any file every
flag serves its code default (off).

Each request is evaluated with its user as the targeting key (X-User-Id, so fractional
rollouts are sticky per user) and its segment as the `segment` attribute (X-User-Type,
e.g. beta-photographer). The reply names the variant of each flag in X-Flag-Variant
(`flag=variant`, `;`-separated), and every request is counted per flag, variant and
status code (with its latency) in Prometheus metrics on /metrics: the analysis compares
the users with a flag on against those with it off.

The gallery evaluates the flags its code knows, and those named in GALLERY_FLAGS:
LAYOUT_FLAG, the new grid layout of the gallery page, and BULK_FLAG, bulk download
links, whose first implementation is deliberately broken: with it on, 30% of the
requests fail with 500 (the demo's faulty feature). GALLERY_FLAG_FAULTS=
`flag.variant=rate,...` sets such shares for any flag's variant, like GALLERY_ERROR_RATE
does for a version (`bulk-download.on=0` fixes it).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, OpenFeatureError
from prometheus_client import CollectorRegistry, Counter, Histogram

FLAGS_FILE_VARIABLE = "FLAGD_FILE"
FLAGS_VARIABLE = "GALLERY_FLAGS"
FAULTS_VARIABLE = "GALLERY_FLAG_FAULTS"
LAYOUT_FLAG = "new-gallery-layout"
BULK_FLAG = "bulk-download"
BUILT_IN_FAULTS = {(BULK_FLAG, "on"): 0.3}
USER_HEADER = "X-User-Id"
SEGMENT_HEADER = "X-User-Type"
VARIANT_HEADER = "X-Flag-Variant"
SEGMENT_ATTRIBUTE = "segment"
ON, OFF = "on", "off"
"""The variant reported when a flag is not defined (or the file is missing): the code default."""
SCALAR_READS = (("get_boolean_details", False), ("get_string_details", ""), ("get_float_details", 0.0))
RELOAD_POLL_MS = 200
"""A stat() five times a second, for a kill switch well under a second end to end."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

log = logging.getLogger("gallery.flags")


# --- pure helpers --------------------------------------------------------------------------


def flags_evaluated(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The flags the code knows and those named in GALLERY_FLAGS, each once, in order."""
    named = [name.strip() for name in environ.get(FLAGS_VARIABLE, "").split(",") if name.strip()]
    return tuple(dict.fromkeys([LAYOUT_FLAG, BULK_FLAG, *named]))


def parse_flag_faults(text: str) -> dict[tuple[str, str], float]:
    """`flag.variant=rate,...` as {(flag, variant): rate}, rates clamped to 0..1.
    ValueError naming the entry that is not of that form."""
    faults: dict[tuple[str, str], float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        target, _, rate = entry.partition("=")
        flag, _, variant = target.strip().rpartition(".")
        try:
            value = float(rate)
        except ValueError:
            value = None
        if not flag or not variant or value is None:
            raise ValueError(f"{FAULTS_VARIABLE}: {entry!r} is not flag.variant=rate")
        faults[(flag, variant)] = min(max(value, 0.0), 1.0)
    return faults


def variant_header(variants: Mapping[str, str]) -> str:
    return ";".join(f"{flag}={variant}" for flag, variant in variants.items())


def parse_variant_header(text: str | None) -> dict[str, str]:
    """The X-Flag-Variant header as {flag: variant} (empty when absent)."""
    pairs = (part.split("=", 1) for part in (text or "").split(";") if "=" in part)
    return {flag.strip(): variant.strip() for flag, variant in pairs}


def context_of(user: str | None, segment: str | None) -> EvaluationContext:
    """The evaluation context of a request: no user, no targeting key (fractional
    rules then serve the flag's default variant)."""
    return EvaluationContext(targeting_key=user or None, attributes={SEGMENT_ATTRIBUTE: segment} if segment else {})


# --- metrics -------------------------------------------------------------------------------


@dataclass
class FlagMetrics:
    """Per flag and variant: requests by status code and their latency. A registry of
    its own, so several galleries can live in one process (tests)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "gallery_flag_requests", "Requests served, per feature flag variant and status code",
            ["flag", "variant", "code"], registry=self.registry,
        )
        self.latency = Histogram(
            "gallery_flag_request_duration_seconds", "Request latency per feature flag variant",
            ["flag", "variant"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def observe(self, variants: Mapping[str, str], code: int, seconds: float) -> None:
        for flag, variant in variants.items():
            self.requests.labels(flag, variant, str(code)).inc()
            self.latency.labels(flag, variant).observe(seconds)


# --- evaluation ----------------------------------------------------------------------------


@dataclass
class GalleryFlags:
    """The flags one gallery process evaluates, and what their variants do."""

    client: OpenFeatureClient | None
    flags: tuple[str, ...] = (LAYOUT_FLAG,)
    faults: dict[tuple[str, str], float] = field(default_factory=dict)
    metrics: FlagMetrics = field(default_factory=FlagMetrics)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], domain: str) -> GalleryFlags:
        """Open the flags file named in the environment (none: every flag off)."""
        path = environ.get(FLAGS_FILE_VARIABLE)
        return cls(
            client=open_flags_file(path, domain) if path else None,
            flags=flags_evaluated(environ),
            faults={**BUILT_IN_FAULTS, **parse_flag_faults(environ.get(FAULTS_VARIABLE, ""))},
        )

    def evaluate(self, user: str | None, segment: str | None) -> dict[str, str]:
        """Each flag's variant for this user: {flag: variant}."""
        if self.client is None:
            return dict.fromkeys(self.flags, OFF)
        context = context_of(user, segment)
        return {flag: self._variant(flag, context) for flag in self.flags}

    def fails(self, variants: Mapping[str, str]) -> bool:
        """True for the configured share of requests served with a faulty variant."""
        rate = max((self.faults.get(item, 0.0) for item in variants.items()), default=0.0)
        return rate > 0 and random.random() < rate

    def _variant(self, flag: str, context: EvaluationContext) -> str:
        """The variant's name, whatever its values' type: flagd refuses a typed read of
        another type, so boolean, then string, then number."""
        for read, default in SCALAR_READS:
            details = getattr(self.client, read)(flag, default, context)
            if details.error_code != ErrorCode.TYPE_MISMATCH:
                return details.variant or OFF
        return OFF


def open_flags_file(path: str, domain: str) -> OpenFeatureClient:
    """An OpenFeature client on the flagd file resolver for `path`, ready when the file
    is; a missing or invalid file is logged, every flag is off until a good one appears."""
    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=path, deadline_ms=RELOAD_POLL_MS)
    try:
        api.set_provider_and_wait(provider, domain=domain)
    except OpenFeatureError as error:
        log.warning("flags file %s not usable yet (%s); flags are off until it is", path, error)
    return api.get_client(domain)


class _OncePerProblem(logging.Filter):
    """The file watcher logs a problem with its traceback at every poll (twice a
    second) while the file stays bad: keep one line per new problem."""

    def __init__(self) -> None:
        super().__init__()
        self._last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.exc_info, record.exc_text = None, None
        repeated, self._last = message == self._last, message
        return not repeated


def quiet_provider_logs() -> None:
    logging.getLogger("openfeature.contrib").addFilter(_OncePerProblem())
