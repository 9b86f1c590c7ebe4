"""The demo's trains (pipeline/local/demo_trains.py) are valid train requests that tell
the story: the gallery after shoot-service, needing its new API; the second one failing."""

from __future__ import annotations

from pipeline.decisions.validation import parse_train
from pipeline.gallery.dependency import NEEDS_VARIABLE
from pipeline.local.demo_trains import GALLERY, SHOOT, TRAINS, train_request


def test_the_demo_trains_are_valid_and_the_gallery_departs_after_the_shoot_service_it_needs():
    for name, version, faults, _ in TRAINS:
        train = parse_train(train_request(name, version, faults))
        assert train.depends_on() == {SHOOT: [], GALLERY: [SHOOT]}
        assert train.member(GALLERY).env[NEEDS_VARIABLE] == SHOOT
        assert train.policy.approvals == "per_train"
    assert [expected for *_, expected in TRAINS] == ["promoted", "rolled_back"]
    assert "GALLERY_ERROR_RATE" in train_request(*TRAINS[1][:3])["releases"][1]["env"]
