"""Feature-flag rules (issue #13), as plain functions: whether a stored flags document is
one flagd would load (checked against flagd's own JSON schema, vendored in
pipeline/flags/schema/), whether a rollout stage may be applied, and the parsing of a
rollout request. Each problem names the field, so people can fix it; a change that
breaks a rule is never written, so the last good state keeps serving."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from pipeline.decisions.validation import InvalidRequest, _parse
from pipeline.models.flags import FeatureRolloutRequest, FlagSetting, FlagStageRequest, FlagState

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "flags" / "schema"
MAX_DOCUMENT_BYTES = 1024 * 1024
"""A ConfigMap holds at most 1 MiB; the local file is held to the same bound."""


FLAG_KINDS = {bool: "booleanFlag", str: "stringFlag", int: "numberFlag", float: "numberFlag", dict: "objectFlag"}


@cache
def _schemas() -> dict[str, Any]:
    return {name: json.loads((SCHEMA_DIR / name).read_text()) for name in ("flags.json", "targeting.json")}


@cache
def _validator(definition: str = "providerConfig") -> Draft7Validator:
    """flagd's flags schema rooted at one of its definitions, its targeting schema
    reachable by the relative $ref it uses."""
    schemas = _schemas()
    targeting = Resource.from_contents(schemas["targeting.json"])
    # draft 7 ignores the $id beside flags.json's root $ref, so its "./targeting.json" has no base
    registry = Registry().with_resources(
        [(schemas["targeting.json"]["$id"], targeting), ("./targeting.json", targeting), ("targeting.json", targeting)]
    )
    return Draft7Validator({**schemas["flags.json"], "$ref": f"#/definitions/{definition}"}, registry=registry)


def parse_document(text: str, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The flagd document in `text`, or the problems that stop flagd loading it."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        return None, [f"{where}: larger than {MAX_DOCUMENT_BYTES} bytes"]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        return None, [f"{where}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"]
    problems = document_problems(document)
    return (None, problems) if problems else (document, [])


def document_problems(document: Any) -> list[str]:
    """Why flagd would reject `document`, each problem as `field.path: message`. The
    document's frame is checked first, then each flag against the schema of its type
    (boolean, string, number or object flag), so a bad targeting rule is reported as
    such, not as the other flag types it does not match either."""
    if not isinstance(document, dict):
        return [f"document: expected a JSON object, got {type(document).__name__}"]
    flags = document.get("flags")
    frame = {**document, "flags": {}} if isinstance(flags, dict) else document
    problems = [_describe(error, ()) for error in _validator().iter_errors(frame)]
    for name, definition in (flags or {}).items() if isinstance(flags, dict) else ():
        problems += _flag_problems(name, definition)
    return sorted(set(problems))


def _flag_problems(name: str, definition: Any) -> list[str]:
    where = ("flags", name)
    if not isinstance(definition, dict):
        return [f"flags.{name}: expected a JSON object, got {type(definition).__name__}"]
    variants = definition.get("variants")
    kinds = {FLAG_KINDS.get(type(value)) for value in variants.values()} if isinstance(variants, dict) and variants else set()
    if len(kinds) > 1 or None in kinds:
        return [f"flags.{name}.variants: all variants must be of one type (boolean, string, number or object)"]
    kind = kinds.pop() if kinds else "booleanFlag"
    error = best_match(_validator(kind).iter_errors(definition))
    problems = [_describe(error, where)] if error is not None else []
    default = definition.get("defaultVariant")
    if isinstance(default, str) and isinstance(variants, dict) and default not in variants:
        problems.append(f"flags.{name}.defaultVariant: {default!r} is not one of the flag's variants {sorted(variants)}")
    return problems


def _describe(error: Any, where: tuple[str, ...]) -> str:
    field = ".".join(str(part) for part in (*where, *error.absolute_path)) or "document"
    message = error.message
    return f"{field}: {message if len(message) <= 200 else message[:199] + '…'}"


def steps_problems(percentages: list[int]) -> list[str]:
    """Percentage steps must lie in 0-100 and strictly rise."""
    problems = [
        f"steps[{index}].percentage: {value} is outside 0-100" for index, value in enumerate(percentages) if not 0 <= value <= 100
    ]
    for index, (earlier, later) in enumerate(zip(percentages, percentages[1:]), start=1):
        if later <= earlier:
            problems.append(f"steps[{index}].percentage: {later} does not rise above {earlier}")
    return problems


def variant_problems(state: FlagState, variants: dict[str, Any] | None, on: str, off: str) -> list[str]:
    """A stage names variants the flag must define: the existing flag's, or those it is created with."""
    if not state.exists and variants is None:
        return [f"flag: {state.flag!r} is not defined in the {state.environment} store; give its variants to create it"]
    defined = variants if variants is not None else state.variants
    problems = [
        f"{field}: {name!r} is not a variant of {state.flag} (defined: {', '.join(sorted(defined))})"
        for field, name in (("on_variant", on), ("off_variant", off))
        if name not in defined
    ]
    if state.exists and variants is not None and variants != state.variants:
        problems.append(f"variants: {state.flag} already defines {state.variants}, not {variants}")
    return problems


def stage_refusal(state: FlagState, request: FlagStageRequest) -> str | None:
    """Why a rollout stage must not be applied, or None: a kill after the rollout read the
    flag is never undone by a step of that rollout."""
    if state.killed and (state.killed_revision or 0) > request.since_revision:
        return (
            f"{state.flag} was turned off at revision {state.killed_revision} by {state.changed_by or 'someone'}"
            f" ({state.kill_reason or 'no reason given'}), after this rollout started"
        )
    return None


def setting_problems(setting: FlagSetting) -> list[str]:
    problems = [] if 0 <= setting.percentage <= 100 else [f"percentage: {setting.percentage} is outside 0-100"]
    if len(set(setting.segments)) != len(setting.segments):
        problems.append("segments: lists a segment twice")
    return problems


def parse_rollout(raw: Any) -> FeatureRolloutRequest:
    """Workflow input -> FeatureRolloutRequest, or InvalidRequest naming every bad field."""
    return _parse(raw, FeatureRolloutRequest, "feature rollout request")


def shipped_rollouts(flags: list[dict[str, Any]], service: str, target: str) -> list[FeatureRolloutRequest]:
    """The rollouts of the flags a release ships dark (`ReleaseRequest.flags`): each a
    FeatureRolloutRequest whose `service` and `target` default to the release's. Raises
    InvalidRequest naming `flags[i].field`."""
    rollouts, problems = [], []
    for index, raw in enumerate(flags):
        try:
            rollouts.append(parse_rollout({"service": service, "target": target, **raw}))
        except InvalidRequest as invalid:
            problems += [f"flags[{index}].{problem}" for problem in invalid.problems]
    names = [rollout.flag for rollout in rollouts]
    problems += [f"flags: {name!r} is listed twice" for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise InvalidRequest(problems, "release request")
    return rollouts
