"""Health endpoints and a photos API round trip."""

from __future__ import annotations

import httpx

from ._harness import expect, expect_status, run


def suite(client: httpx.Client) -> None:
    for path in ("/health/live", "/health/ready"):
        expect_status(client.get(path), 200)
    version = client.get("/version")
    expect_status(version, 200)
    expect(version.json().get("version") == version.headers.get("X-Served-Version"),
           "/version disagrees with the X-Served-Version header")
    created = client.post("/api/photos", json={"title": "integration check"})
    expect_status(created, 201)
    photos = client.get("/api/photos")
    expect_status(photos, 200)
    expect(created.json() in photos.json(), "an uploaded photo is missing from /api/photos")
    expect_status(client.post("/api/photos", json={"title": ""}), 400)


if __name__ == "__main__":
    run(suite)
