"""Renditions served for streaming: a phone's player asks for byte ranges (to start before the whole
file has arrived, and to seek), so every link the viewer plays answers `Range:` with 206 and the slice,
from the API's own signed downloads and from S3's presigned links alike."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.support.images import mp4_bytes, photo_jpeg
from tests.support.viewer import REFERENCE_MIND, create_content, place_marker, prepare_videos


def _playing_url(api: TestClient, tenant: Tenant) -> str:
    """The link the viewer plays of fresh content: its video's rendition."""
    created = create_content(api, tenant, photo_jpeg(400, 300), mp4_bytes(), video_type="video/mp4")
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    prepare_videos()
    body = api.get(f"/api/ar/{created['unique_id']}").json()
    assert body["state"] == "active" and "/renditions/" in body["video_url"], body
    return str(body["video_url"])


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_signed_rendition_download_answers_byte_ranges_with_the_slice(
    api: TestClient, tenant: Tenant
) -> None:
    url = _playing_url(api, tenant)
    whole = api.get(url)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    data = whole.content
    size = len(data)
    assert size > 1000 and data[4:8] == b"ftyp"

    middle = api.get(url, headers={"Range": "bytes=100-599"})
    assert middle.status_code == 206
    assert middle.headers["content-range"] == f"bytes 100-599/{size}"
    assert middle.headers["content-length"] == "500"
    assert middle.headers["content-type"] == "video/mp4"
    assert middle.headers["accept-ranges"] == "bytes"
    assert middle.content == data[100:600]

    # The rest of the file from an offset (a player resuming), and its last bytes (a player reading a
    # trailing index).
    rest = api.get(url, headers={"Range": f"bytes={size - 300}-"})
    assert rest.status_code == 206 and rest.content == data[-300:]
    assert rest.headers["content-range"] == f"bytes {size - 300}-{size - 1}/{size}"
    tail = api.get(url, headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == data[-64:]
    # An end past the file is cut at the file's end.
    beyond = api.get(url, headers={"Range": f"bytes=0-{size * 2}"})
    assert beyond.status_code == 206 and beyond.content == data

    past_the_end = api.get(url, headers={"Range": f"bytes={size}-"})
    assert past_the_end.status_code == 416
    assert past_the_end.headers["content-range"] == f"bytes */{size}"

    # A range asked only while the file is the one the player saw (If-Range with its ETag).
    same = api.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
    assert same.status_code == 206 and same.content == data[:10]
    changed = api.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert changed.status_code == 200 and changed.content == data


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_head_of_a_rendition_tells_its_size_and_type_without_the_body(
    api: TestClient, tenant: Tenant
) -> None:
    url = _playing_url(api, tenant)
    size = len(api.get(url).content)
    head = api.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["content-type"] == "video/mp4"
    assert head.headers["accept-ranges"] == "bytes"
    ranged = api.head(url, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.content == b""
    assert ranged.headers["content-range"] == f"bytes 0-99/{size}"
    # A signature is checked for HEAD as for GET.
    forged = api.head(url.replace("signature=", "signature=0"))
    assert forged.status_code == 403


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_a_presigned_s3_rendition_link_answers_byte_ranges(api: TestClient, tenant: Tenant) -> None:
    url = _playing_url(api, tenant)
    assert url.startswith("http") and "testserver" not in url
    whole = httpx.get(url, timeout=30)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    data = whole.content
    ranged = httpx.get(url, headers={"Range": "bytes=32-287"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 32-287/{len(data)}"
    assert ranged.headers["content-type"] == "video/mp4"
    assert ranged.content == data[32:288]
