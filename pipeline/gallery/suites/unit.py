"""Pure checks of the gallery's own helper functions (no network)."""

from __future__ import annotations

import sys

from pipeline.gallery.app import parse_faults, render_gallery, validate_activity, validate_photo

from ._harness import CheckFailed, expect


def rejects(function, payload) -> bool:
    try:
        function(payload)
    except ValueError:
        return True
    return False


def main() -> None:
    try:
        expect(parse_faults({}).error_rate == 0, "no fault configured must mean no errors")
        expect(parse_faults({"GALLERY_ERROR_RATE": "7"}).error_rate == 1, "error rate must be clamped to 1")
        expect(validate_photo({"title": " sunset "}) == "sunset", "titles must be trimmed")
        expect(rejects(validate_photo, {"title": ""}), "an empty title must be rejected")
        expect(rejects(validate_photo, ["title"]), "a non-object upload must be rejected")
        expect(rejects(validate_activity, {"active_uploads": -1}), "negative activity must be rejected")
        expect("&lt;script&gt;" in render_gallery("1", ["<script>"]), "titles must be HTML-escaped")
    except CheckFailed as failure:
        sys.exit(f"FAIL: {failure}")
    print("PASS")


if __name__ == "__main__":
    main()
