"""The sample gallery's feature flags (pipeline/gallery/flags.py, scrape.py): the pure
helpers, then a real gallery process reading a real flagd file through OpenFeature's
flagd provider (its FILE resolver), as the local target starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.gallery.flags import (
    BULK_FLAG,
    FAULTS_VARIABLE,
    FLAGS_FILE_VARIABLE,
    FLAGS_VARIABLE,
    LAYOUT_FLAG,
    VARIANT_HEADER,
    FlagMetrics,
    flags_evaluated,
    parse_flag_faults,
    parse_variant_header,
    variant_header,
)
from pipeline.gallery.scrape import SCRAPE_DIR_VARIABLE, SERVICE_VARIABLE, register_for_scraping
from pipeline.metrics.prometheus import REQUESTS, MetricsQuery, render
from pipeline.models import Metric
from pipeline.models.flags import FlagComparison
from tests.helpers.local import free_port
from tests.test_gallery_store import wait_ready

FAULTY = "photo-filters"


def test_the_flags_the_code_knows_are_always_evaluated_and_named_flags_once_each():
    assert flags_evaluated({}) == (LAYOUT_FLAG, BULK_FLAG)
    assert flags_evaluated({FLAGS_VARIABLE: f" {FAULTY}, {LAYOUT_FLAG},,x"}) == (LAYOUT_FLAG, BULK_FLAG, FAULTY, "x")


def test_flag_faults_are_flag_variant_rates_clamped():
    assert parse_flag_faults("") == {}
    assert parse_flag_faults(f"{FAULTY}.on=0.3, a.b.off=7") == {(FAULTY, "on"): 0.3, ("a.b", "off"): 1.0}
    for bad in ("on=0.3", f"{FAULTY}.on", f"{FAULTY}.on=lots"):
        with pytest.raises(ValueError, match=FAULTS_VARIABLE):
            parse_flag_faults(bad)


def test_the_variant_header_round_trips():
    variants = {LAYOUT_FLAG: "on", FAULTY: "off"}
    assert parse_variant_header(variant_header(variants)) == variants
    assert parse_variant_header(None) == {}


def test_metrics_count_each_flag_variant_and_code():
    metrics = FlagMetrics()
    metrics.observe({LAYOUT_FLAG: "on", FAULTY: "off"}, 500, 0.02)
    metrics.observe({LAYOUT_FLAG: "on"}, 200, 0.01)
    assert metrics.registry.get_sample_value(
        "gallery_flag_requests_total", {"flag": LAYOUT_FLAG, "variant": "on", "code": "500"}) == 1
    assert metrics.registry.get_sample_value(
        "gallery_flag_request_duration_seconds_count", {"flag": LAYOUT_FLAG, "variant": "on"}) == 2


def test_a_process_registers_for_scraping_and_replaces_a_stale_claim_on_its_port(tmp_path: Path):
    environ = {SCRAPE_DIR_VARIABLE: str(tmp_path), SERVICE_VARIABLE: "shop"}
    register_for_scraping(environ, 4321, "1.0", "old")  # killed: never unregistered
    unregister = register_for_scraping(environ, 4321, "2.0", "new")
    [entry] = json.loads((tmp_path / "new.json").read_text())
    assert entry == {"targets": ["127.0.0.1:4321"], "labels": {"service": "shop", "version": "2.0", "instance_id": "new"}}
    assert not (tmp_path / "old.json").exists()
    unregister()
    assert list(tmp_path.iterdir()) == []


# --- a real gallery process ----------------------------------------------------------------


def flag(percentage: int, segments: tuple[str, ...] = ()) -> dict:
    """A flagd definition shaped like the pipeline writes it (see the flags contract)."""
    rule = {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
                           ["on", percentage], ["off", 100 - percentage]]}
    if segments:
        rule = {"if": [{"in": [{"var": "segment"}, list(segments)]}, "on", rule]}
    return {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off", "targeting": rule}


def write_flags(path: Path, flags: dict[str, dict] | str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(flags if isinstance(flags, str) else json.dumps({"flags": flags}))
    os.replace(temporary, path)


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path, Path]]:
    """A gallery process on a flags file (not written yet), with one faulty variant; its
    log in tmp_path/gallery.log."""
    flags_file, scrape_dir, port = tmp_path / "production.flagd.json", tmp_path / "targets", free_port()
    environ = {**os.environ, FLAGS_FILE_VARIABLE: str(flags_file), SCRAPE_DIR_VARIABLE: str(scrape_dir),
               FLAGS_VARIABLE: FAULTY, FAULTS_VARIABLE: f"{FAULTY}.on=1"}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.gallery.app", "--port", str(port), "--version", "1.0.0",
                                "--instance-id", "flags-test"], env=environ,
                               stderr=(tmp_path / "gallery.log").open("w"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            wait_ready(client)
            yield client, flags_file, scrape_dir
    finally:
        process.terminate()
        process.wait(10)


def variants(client: httpx.Client, user: str, segment: str | None = None, path: str = "/api/photos") -> dict[str, str]:
    headers = {"X-User-Id": user, **({"X-User-Type": segment} if segment else {})}
    return parse_variant_header(client.get(path, headers=headers).headers.get(VARIANT_HEADER))


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_without_a_flags_file_every_flag_serves_off_until_one_appears(gallery):
    client, flags_file, _ = gallery
    assert variants(client, "u1") == {LAYOUT_FLAG: "off", BULK_FLAG: "off", FAULTY: "off"}
    write_flags(flags_file, {LAYOUT_FLAG: flag(100)})
    wait_for(lambda: variants(client, "u1")[LAYOUT_FLAG] == "on")


def test_the_segment_and_the_user_choose_the_variant_and_the_page_changes(gallery):
    client, flags_file, _ = gallery
    write_flags(flags_file, {LAYOUT_FLAG: flag(0, ("beta-photographer",))})
    wait_for(lambda: variants(client, "u1", "beta-photographer")[LAYOUT_FLAG] == "on")
    assert variants(client, "u1")[LAYOUT_FLAG] == "off"
    assert "class='grid'" in client.get("/", headers={"X-User-Id": "u1", "X-User-Type": "beta-photographer"}).text
    assert "<ul>" in client.get("/", headers={"X-User-Id": "u1"}).text


def test_a_percentage_splits_users_stickily_as_it_rises(gallery):
    client, flags_file, _ = gallery
    users = [f"user-{index:05d}" for index in range(400)]
    write_flags(flags_file, {LAYOUT_FLAG: flag(25)})
    wait_for(lambda: variants(client, "probe")[LAYOUT_FLAG] in ("on", "off") and _on_users(client, users[:50]))
    at_25 = _on_users(client, users)
    write_flags(flags_file, {LAYOUT_FLAG: flag(50)})
    wait_for(lambda: len(_on_users(client, users)) > len(at_25))
    at_50 = _on_users(client, users)
    assert 0.15 < len(at_25) / len(users) < 0.35 and 0.4 < len(at_50) / len(users) < 0.6
    assert at_25 <= at_50


def _on_users(client: httpx.Client, users: list[str]) -> set[str]:
    return {user for user in users if variants(client, user)[LAYOUT_FLAG] == "on"}


def test_an_invalid_hand_edit_keeps_the_last_good_flags_serving(gallery, tmp_path: Path):
    """The provider reads the bad file (its log says so) and keeps serving the good one."""
    client, flags_file, _ = gallery
    log = tmp_path / "gallery.log"
    write_flags(flags_file, {LAYOUT_FLAG: flag(100)})
    wait_for(lambda: variants(client, "u1")[LAYOUT_FLAG] == "on")
    write_flags(flags_file, '{"flags": {"new-gallery-layout": ')
    wait_for(lambda: "Could not parse JSON" in log.read_text())
    assert variants(client, "u1")[LAYOUT_FLAG] == "on"
    write_flags(flags_file, {LAYOUT_FLAG: {"state": "ENABLED"}})  # valid JSON, invalid flagd
    wait_for(lambda: "using flagd syntax" in log.read_text())
    assert variants(client, "u1")[LAYOUT_FLAG] == "on"


def test_a_faulty_variant_fails_its_requests_and_metrics_count_them_per_variant(gallery):
    client, flags_file, scrape_dir = gallery
    write_flags(flags_file, {FAULTY: flag(50)})
    wait_for(lambda: any(variants(client, f"u{index}")[FAULTY] == "on" for index in range(20)))
    codes = Counter()
    for index in range(100):
        response = client.get("/api/photos", headers={"X-User-Id": f"u{index}"})
        codes[(parse_variant_header(response.headers[VARIANT_HEADER])[FAULTY], response.status_code)] += 1
    assert set(codes) == {("on", 500), ("off", 200)}
    samples = {
        (sample.labels["flag"], sample.labels["variant"], sample.labels["code"]): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples if sample.name == "gallery_flag_requests_total"
    }
    assert samples[(FAULTY, "on", "500")] >= codes[("on", 500)]
    assert samples[(FAULTY, "off", "200")] >= codes[("off", 200)]
    [registered] = scrape_dir.glob("*.json")
    assert json.loads(registered.read_text())[0]["labels"]["instance_id"] == "flags-test"


def test_a_flag_analysis_reads_the_on_variant_as_canary_and_the_off_variant_as_stable():
    query = MetricsQuery(metrics=[Metric.ERROR_RATE], flag=FlagComparison(flag=FAULTY, on_variant="v2", off_variant="v1"))
    canary, stable = (render(query.template(Metric.ERROR_RATE), query.placeholders("shop", track, "9s"))
                      for track in ("canary", "stable"))
    assert 'service="shop",flag="photo-filters",variant="v2",code=~"5.."' in canary and "[9s]" in canary
    assert 'variant="v1"' in stable and "traefik" not in stable
    assert MetricsQuery(metrics=[]).template(REQUESTS).startswith("sum(increase(traefik_service_requests_total")
