"""The flag stores (issue #13): the local flagd file and the Kubernetes ConfigMap (the
latter through the real `kubernetes` client against the API-server double, since no
API server runs here), both driven through pipeline/flags/changes.py as the
activities and `releasectl flags` drive them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.decisions.flags import document_problems
from pipeline.flags.base import FlagRuleBroken, FlagsInvalid, FlagUnknown, WriteConflict
from pipeline.flags.changes import FlagKilled, apply_stage, kill, read_flag
from pipeline.flags.configmap import AUDIT_KEY, DOCUMENT_KEY, ConfigMapStore
from pipeline.flags.local_file import LocalFileStore, flags_file
from pipeline.kube import Kube, KubeSettings, api_client
from pipeline.models.flags import FlagChange, FlagKillRequest, FlagRef, FlagSetting, FlagStageRequest, Serving
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import PRODUCTION, STAGING, worker_env

FLAG = "new-gallery-layout"
NOW = "2026-11-28T04:00:00+00:00"


def stage(percentage: int, segments: list[str] | None = None, *, sequence: int = 1, since: int = 0,
          variants: dict | None = None, target: str = "local", **extra) -> FlagStageRequest:
    return FlagStageRequest(
        ref=FlagRef(flag=FLAG, target=target), variants={"on": True, "off": False} if variants is None else variants,
        setting=FlagSetting(segments=segments or [], percentage=percentage), actor="rollout-1",
        rollout_id="rollout-1", sequence=sequence, since_revision=since, reason="step", **extra,
    )


def kill_request(actor: str = "ana") -> FlagKillRequest:
    return FlagKillRequest(ref=FlagRef(flag=FLAG), actor=actor, reason="errors on the new layout", release_id="rel-9")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(flags_file(tmp_path, "production"), "production")


@pytest.fixture
def configmap_store(kube_double: KubeDouble, tmp_path: Path) -> ConfigMapStore:
    settings = KubeSettings.from_env(worker_env(kube_double, tmp_path))
    return ConfigMapStore.on(Kube(api_client(settings), settings), "production")


@pytest.fixture(params=["local", "configmap"])
def store(request, local_store, tmp_path):
    if request.param == "local":
        return local_store
    return request.getfixturevalue("configmap_store")


async def test_a_new_flag_is_defined_and_rolled_out_stage_by_stage(store):
    state = await apply_stage(store, stage(0, ["beta-photographer", "internal-team"]), NOW)
    assert state.exists and state.serving is Serving.PARTIAL and state.setting.segments == ["beta-photographer", "internal-team"]
    state = await apply_stage(store, stage(25, ["beta-photographer"], sequence=2), NOW)
    assert state.setting.percentage == 25 and state.on_variant == "on" and state.default_variant == "off"
    state = await apply_stage(store, stage(100, sequence=3), NOW)
    assert state.serving is Serving.ON and state.default_variant == "on"
    document = (await store.read()).document
    assert document_problems(document) == []
    assert "targeting" not in document["flags"][FLAG]
    actions = [(change.action, change.after.percentage) for change in await store.history(FLAG)]
    assert actions == [("define", 0), ("stage", 25), ("stage", 100)]


async def test_the_fractional_rule_keeps_the_on_bucket_first_so_users_keep_the_feature(store):
    await apply_stage(store, stage(25), NOW)
    rule = (await store.read()).document["flags"][FLAG]["targeting"]
    assert rule["fractional"][1:] == [["on", 25], ["off", 75]]
    await apply_stage(store, stage(50, sequence=2), NOW)
    rule = (await store.read()).document["flags"][FLAG]["targeting"]
    assert rule["fractional"][1:] == [["on", 50], ["off", 50]]


async def test_applying_the_same_stage_twice_changes_nothing_the_second_time(store):
    await apply_stage(store, stage(25), NOW)
    again = await apply_stage(store, stage(25), NOW)
    late = await apply_stage(store, stage(50, sequence=2), NOW)
    stale = await apply_stage(store, stage(25), NOW)  # a retry of step 1 arriving after step 2
    assert again.setting.percentage == 25 and late.setting.percentage == 50 and stale.setting.percentage == 50
    assert len(await store.history(FLAG)) == 2


async def test_a_kill_turns_the_flag_off_for_everyone_and_records_who_and_why(store):
    await apply_stage(store, stage(50, ["internal-team"]), NOW)
    state = await kill(store, kill_request(), NOW)
    assert state.killed and state.serving is Serving.OFF and state.default_variant == "off"
    assert "targeting" not in (await store.read()).document["flags"][FLAG]
    last = (await store.history(FLAG))[-1]
    assert (last.action, last.actor, last.reason, last.release_id) == ("kill", "ana", "errors on the new layout", "rel-9")
    assert last.before.percentage == 50 and last.serving is Serving.OFF
    assert (await kill(store, kill_request("bob"), NOW)).changed_by == "ana"  # idempotent: the first kill stands


async def test_a_stage_never_undoes_a_kill_made_after_its_rollout_started(store):
    started = await apply_stage(store, stage(25), NOW)
    await kill(store, kill_request(), NOW)
    with pytest.raises(FlagKilled, match="turned off .* by ana"):
        await apply_stage(store, stage(50, sequence=2, since=started.revision), NOW)
    assert (await read_flag(store, FLAG)).serving is Serving.OFF
    killed = await read_flag(store, FLAG)
    revived = await apply_stage(store, stage(25, since=killed.revision), NOW)
    assert revived.serving is Serving.PARTIAL and not revived.killed  # a rollout started after the kill may go on


async def test_bad_changes_name_the_field_and_write_nothing(store):
    await apply_stage(store, stage(25), NOW)
    before = (await store.read()).document
    with pytest.raises(FlagRuleBroken, match="on_variant: 'blue' is not a variant"):
        await apply_stage(store, stage(50, sequence=2, on_variant="blue").model_copy(update={"variants": None}), NOW)
    with pytest.raises(FlagRuleBroken, match="variants: new-gallery-layout already defines"):
        await apply_stage(store, stage(50, sequence=2, variants={"on": "a", "off": "b"}), NOW)
    with pytest.raises(FlagUnknown, match="flag: 'other' is not defined"):
        await kill(store, kill_request().model_copy(update={"ref": FlagRef(flag="other")}), NOW)
    with pytest.raises(FlagRuleBroken, match="flag: 'other' is not defined .* give its variants"):
        await apply_stage(store, stage(5, variants={}).model_copy(
            update={"ref": FlagRef(flag="other"), "variants": None}), NOW)
    assert (await store.read()).document == before


async def test_a_write_from_a_stale_read_is_refused(store):
    await apply_stage(store, stage(25), NOW)
    stale = await store.read()
    await kill(store, kill_request(), NOW)
    change = (await store.history(FLAG))[-1]
    with pytest.raises(WriteConflict):
        await store.write(stale, stale.document, change)


async def test_a_schema_breaking_document_is_never_written(store):
    snapshot = await store.read()
    broken = {**snapshot.document, "flags": {FLAG: {"state": "ENABLED", "variants": {"on": True},
                                                   "defaultVariant": "on", "targeting": {"in": "beta"}}}}
    change = FlagChange(at=NOW, actor="ana", action="stage", flag=FLAG, environment="production", revision=1,
                        serving=Serving.ON)
    with pytest.raises(FlagRuleBroken, match=f"flags.{FLAG}.targeting"):
        await store.write(snapshot, broken, change)
    assert (await store.read()).document == snapshot.document


async def test_a_hand_edited_invalid_file_is_reported_and_left_alone(local_store):
    await apply_stage(local_store, stage(25), NOW)
    local_store.path.write_text('{"flags": {"new-gallery-layout": {"state": "ENABLED",')
    with pytest.raises(FlagsInvalid, match=r"production.flagd.json: not JSON: .* line 1"):
        await read_flag(local_store, FLAG)
    with pytest.raises(FlagsInvalid):
        await kill(local_store, kill_request(), NOW)
    assert local_store.path.read_text() == '{"flags": {"new-gallery-layout": {"state": "ENABLED",'
    local_store.path.write_text(json.dumps({"flags": {FLAG: {"state": "ON", "variants": {"on": True}}}}))
    with pytest.raises(FlagsInvalid, match=f"flags.{FLAG}.state: 'ON' is not one of"):
        await read_flag(local_store, FLAG)


async def test_the_local_file_is_replaced_whole_and_the_audit_log_is_json_lines(local_store):
    await apply_stage(local_store, stage(25), NOW)
    await kill(local_store, kill_request(), NOW)
    assert [p.name for p in local_store.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    lines = local_store.audit_path.read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["define", "kill"]
    local_store.audit_path.write_text(local_store.audit_path.read_text() + '{"at": "cut sho')
    assert len(await local_store.history()) == 2  # a line cut by a crash is skipped, the rest still reads


async def test_the_configmap_holds_the_document_and_audit_in_the_environments_namespace(kube_double, tmp_path):
    settings = KubeSettings.from_env(worker_env(kube_double, tmp_path))
    kube = Kube(api_client(settings), settings)
    production, staging = ConfigMapStore.on(kube, "production"), ConfigMapStore.on(kube, "staging")
    await apply_stage(production, stage(25), NOW)
    await apply_stage(staging, stage(100), NOW)
    stored = kube_double.get("configmaps", PRODUCTION, "feature-flags-production")
    assert json.loads(stored["data"][DOCUMENT_KEY])["flags"][FLAG]["targeting"]["fractional"][1] == ["on", 25]
    assert len(stored["data"][AUDIT_KEY].splitlines()) == 1
    assert kube_double.get("configmaps", STAGING, "feature-flags-staging") is not None
    assert kube_double.get("configmaps", PRODUCTION, "feature-flags-staging") is None


async def test_a_configmap_write_racing_another_writer_is_computed_again(kube_double, configmap_store):
    await apply_stage(configmap_store, stage(25), NOW)
    stored = kube_double.get("configmaps", PRODUCTION, "feature-flags-production")
    other = json.loads(stored["data"][DOCUMENT_KEY])
    other["flags"]["other-flag"] = {"state": "ENABLED", "variants": {"a": "x"}, "defaultVariant": "a"}
    kube_double.before_next_patch(lambda: kube_double._store(
        "configmaps", PRODUCTION, {**stored, "data": {**stored["data"], DOCUMENT_KEY: json.dumps(other)}}, created=False))
    await kill(configmap_store, kill_request(), NOW)
    document = (await configmap_store.read()).document
    assert document["flags"][FLAG]["metadata"]["killed"] is True and "other-flag" in document["flags"]


def test_flags_file_is_per_environment_under_the_state_dir(tmp_path):
    assert flags_file(tmp_path, "staging") == tmp_path / "flags" / "staging.flagd.json"
