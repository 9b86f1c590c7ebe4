"""A user's journey: upload a photo, then find it in the list and on the gallery page."""

from __future__ import annotations

import uuid

import httpx

from ._harness import expect, expect_status, run


def suite(client: httpx.Client) -> None:
    title = f"e2e photo {uuid.uuid4().hex[:8]}"
    expect_status(client.post("/api/photos", json={"title": title}), 201)
    photos = client.get("/api/photos")
    expect_status(photos, 200)
    expect(any(photo.get("title") == title for photo in photos.json()), f"{title!r} is not in /api/photos")
    page = client.get("/")
    expect_status(page, 200)
    expect(title in page.text, f"{title!r} is not on the gallery page")


if __name__ == "__main__":
    run(suite)
