"""The flag rules (pipeline/decisions/flags.py) and the flagd JSON the pipeline writes
(pipeline/flags/document.py), evaluated by flagd's own in-process evaluator (the one
OpenFeature's flagd provider uses), so "segments", "percentage" and "sticky" mean what
flagd makes of them."""

from __future__ import annotations

import copy

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from pipeline.decisions.flags import (
    document_problems,
    parse_document,
    parse_rollout,
    setting_problems,
    stage_refusal,
    steps_problems,
    variant_problems,
)
from pipeline.decisions.validation import InvalidRequest
from pipeline.flags.document import empty_document, flag_definition, flag_state, with_flag
from pipeline.models.flags import FlagRef, FlagSetting, FlagStageRequest, FlagState, Serving

FLAG = "new-gallery-layout"
USERS = [f"user-{n}" for n in range(4000)]


def document(setting: FlagSetting, variants: dict | None = None) -> dict:
    definition = flag_definition(variants or {"on": True, "off": False}, "on", "off", setting, {"revision": 1})
    return with_flag(empty_document(), FLAG, definition, 1)


def evaluator(setting: FlagSetting) -> FlagdCore:
    core = FlagdCore()
    core.set_flags(document(setting))
    return core


def users_on(core: FlagdCore, users: list[str], segment: str = "photographer") -> set[str]:
    return {user for user in users
            if core.resolve_boolean_value(FLAG, False, EvaluationContext(user, {"segment": segment})).value}


@pytest.mark.parametrize("percentage", [10, 25, 50, 75])
def test_a_percentage_reaches_that_share_of_users_within_two_points(percentage):
    share = 100 * len(users_on(evaluator(FlagSetting(percentage=percentage)), USERS)) / len(USERS)
    assert abs(share - percentage) <= 2


def test_a_user_who_has_the_feature_keeps_it_as_the_percentage_rises():
    on_at = {p: users_on(evaluator(FlagSetting(percentage=p)), USERS) for p in (5, 25, 50, 99)}
    assert on_at[5] <= on_at[25] <= on_at[50] <= on_at[99]
    assert len(on_at[25]) > len(on_at[5])


def test_segments_get_the_feature_whatever_the_percentage():
    core = evaluator(FlagSetting(segments=["beta-photographer", "internal-team"], percentage=0))
    assert users_on(core, USERS[:200], "beta-photographer") == set(USERS[:200])
    assert users_on(core, USERS[:200], "internal-team") == set(USERS[:200])
    assert users_on(core, USERS[:200], "photographer") == set()


def test_off_and_on_need_no_targeting():
    assert users_on(evaluator(FlagSetting()), USERS[:100]) == set()
    assert users_on(evaluator(FlagSetting(percentage=100)), USERS[:100]) == set(USERS[:100])
    assert "targeting" not in document(FlagSetting(percentage=100))["flags"][FLAG]


def test_the_written_document_reads_back_as_written():
    state = flag_state(document(FlagSetting(segments=["internal-team"], percentage=25)), FLAG, "production")
    assert (state.on_variant, state.off_variant, state.serving) == ("on", "off", Serving.PARTIAL)
    assert state.setting == FlagSetting(segments=["internal-team"], percentage=25)
    assert not flag_state(empty_document(), FLAG, "production").exists


def test_a_flag_written_by_hand_reads_with_its_default_as_off():
    hand = {"flags": {"dark-mode": {"state": "ENABLED", "variants": {"a": "x", "b": "y"}, "defaultVariant": "b"}}}
    state = flag_state(hand, "dark-mode", "staging")
    assert state.off_variant == "b" and state.on_variant is None and state.serving is Serving.OFF


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.update(state="ON"), f"flags.{FLAG}.state: 'ON' is not one of"),
    (lambda f: f.update(defaultVariant="maybe"), f"flags.{FLAG}.defaultVariant: 'maybe' is not one of the flag's variants"),
    (lambda f: f.update(variants={"on": True, "off": "no"}), f"flags.{FLAG}.variants: all variants must be of one type"),
    (lambda f: f.update(targeting={"in": "beta"}), f"flags.{FLAG}.targeting"),
    (lambda f: f.update(targeting={"fractional": "half"}), f"flags.{FLAG}.targeting.fractional"),
    (lambda f: f.update(targeting={"if": [{"in": [{"var": "segment"}]}, "on", "off"]}), f"flags.{FLAG}.targeting.if.0"),
    (lambda f: f.pop("variants"), f"flags.{FLAG}: 'variants' is a required property"),
])
def test_a_rule_flagd_would_reject_is_named_by_its_field(edit, field):
    broken = copy.deepcopy(document(FlagSetting(segments=["internal-team"], percentage=25)))
    edit(broken["flags"][FLAG])
    problems = document_problems(broken)
    assert problems and problems[0].startswith(field), problems


def test_every_setting_the_pipeline_writes_is_valid_flagd():
    for setting in [FlagSetting(), FlagSetting(percentage=1), FlagSetting(segments=["a"]),
                    FlagSetting(segments=["a", "b"], percentage=99), FlagSetting(percentage=100)]:
        for variants in [{"on": True, "off": False}, {"on": "grid", "off": "list"}, {"on": 2, "off": 1}]:
            assert document_problems(document(setting, variants)) == []


def test_a_hand_edit_into_invalid_json_is_named_with_its_line():
    parsed, problems = parse_document('{\n  "flags": {\n    "x": {,\n', "flags/production.flagd.json")
    assert parsed is None and problems == [
        "flags/production.flagd.json: not JSON: Expecting property name enclosed in double quotes at line 3 column 11"]
    assert document_problems([]) == ["document: expected a JSON object, got list"]


def test_steps_must_lie_in_0_100_and_rise():
    assert steps_problems([25, 50, 100]) == []
    assert steps_problems([25, 25, 120]) == ["steps[2].percentage: 120 is outside 0-100",
                                             "steps[1].percentage: 25 does not rise above 25"]
    assert setting_problems(FlagSetting(segments=["a", "a"])) == ["segments: lists a segment twice"]


def test_variants_must_be_the_flags():
    existing = flag_state(document(FlagSetting(percentage=25)), FLAG, "production")
    assert variant_problems(existing, None, "on", "off") == []
    assert variant_problems(existing, None, "blue", "off") == [
        "on_variant: 'blue' is not a variant of new-gallery-layout (defined: off, on)"]
    assert variant_problems(existing, {"on": "a", "off": "b"}, "on", "off") == [
        "variants: new-gallery-layout already defines {'on': True, 'off': False}, not {'on': 'a', 'off': 'b'}"]
    missing = FlagState(flag="other", environment="production", exists=False)
    assert variant_problems(missing, None, "on", "off") == [
        "flag: 'other' is not defined in the production store; give its variants to create it"]


def test_a_kill_after_the_rollout_read_the_flag_refuses_its_stages():
    killed = FlagState(flag=FLAG, environment="production", killed=True, killed_revision=7, changed_by="ana",
                       kill_reason="errors")
    request = FlagStageRequest(ref=FlagRef(flag=FLAG), setting=FlagSetting(percentage=50), actor="r",
                               rollout_id="r", since_revision=6)
    assert stage_refusal(killed, request) == (
        "new-gallery-layout was turned off at revision 7 by ana (errors), after this rollout started")
    assert stage_refusal(killed, request.model_copy(update={"since_revision": 7})) is None


def test_a_rollout_request_names_every_bad_field():
    with pytest.raises(InvalidRequest) as invalid:
        parse_rollout({"flag": "x", "service": "gallery", "variants": {"on": True, "off": False},
                       "steps": [{"percentage": 50}, {"percentage": 40}], "on_variant": "off", "colour": 1})
    message = str(invalid.value)
    assert "steps: Value error" not in message and "percentages must strictly rise, got [50, 40]" in message
    assert "colour: Extra inputs are not permitted" in message
    assert parse_rollout({"flag": "x", "service": "gallery"}).steps[-1].percentage == 100
