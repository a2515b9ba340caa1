from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from app.core.db import utcnow
from app.photos import signing
from tests.conftest import Api
from tests.photos import samples
from tests.problems import assert_problem
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def stored_files(photo_dir: Path) -> list[Path]:
    if not photo_dir.exists():
        return []
    return sorted(path for path in photo_dir.rglob("*") if path.is_file())


async def upload(
    world: World,
    path: str,
    data: bytes,
    headers: dict[str, str],
    *,
    filename: str = "IMG_0001.jpg",
    content_type: str = "image/jpeg",
) -> httpx.Response:
    return await world.api.client.post(
        path, files={"file": (filename, data, content_type)}, headers=headers
    )


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_upload_list_and_fetch_through_signed_urls(world: World, photo_dir: Path) -> None:
    client = world.api.client
    wish = await world.wish()
    uploaded = await upload(world, f"/v1/wishes/{wish['id']}/photos", samples.png(), world.resident)
    assert uploaded.status_code == 201, uploaded.text
    photo = uploaded.json()
    assert photo["kind"] == "wish"
    assert photo["wish_id"] == wish["id"]
    assert photo["claim_id"] is None
    assert (photo["width"], photo["height"]) == (80, 60)
    assert photo["content_type"] == "image/jpeg"
    assert photo["uploaded_by"] == world.resident_id
    assert len(stored_files(photo_dir)) == 2  # the image and its thumbnail

    # Anyone who may see the open wish gets the list, with working URLs.
    member, _ = await world.member()
    listed = await client.get(f"/v1/wishes/{wish['id']}/photos", headers=member)
    assert listed.status_code == 200
    page = listed.json()
    assert page["next_cursor"] is None
    assert [item["id"] for item in page["items"]] == [photo["id"]]
    item = page["items"][0]
    assert set(item) >= {
        "id",
        "width",
        "height",
        "content_type",
        "url",
        "thumbnail_url",
        "expires_at",
    }

    full = await client.get(item["url"])  # no Authorization header
    assert full.status_code == 200
    assert full.headers["content-type"] == "image/jpeg"
    assert full.headers["x-content-type-options"] == "nosniff"
    cache = re.fullmatch(r"private, max-age=(\d+)", full.headers["cache-control"])
    assert cache is not None
    assert 600 - 5 <= int(cache.group(1)) <= 600 + signing.EXPIRY_STEP
    image = opened(full.content)
    assert image.format == "JPEG"
    assert image.size == (80, 60)
    left = image.getpixel((10, 30))
    assert isinstance(left, tuple)
    assert left[0] > 180  # still red on the left

    thumbnail = await client.get(item["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert opened(thumbnail.content).size == (item["thumbnail_width"], item["thumbnail_height"])

    # The same listing a moment later gives the same URLs (the app's image cache hits).
    again = (await client.get(f"/v1/wishes/{wish['id']}/photos", headers=member)).json()
    assert again["items"][0]["url"] == item["url"]


async def test_large_images_are_scaled_and_thumbnailed(world: World) -> None:
    wish = await world.wish()
    big = samples.encode(samples.halves((3000, 1500)), "WEBP")
    response = await upload(world, f"/v1/wishes/{wish['id']}/photos", big, world.resident)
    assert response.status_code == 201, response.text
    photo = response.json()
    assert (photo["width"], photo["height"]) == (2048, 1024)
    assert (photo["thumbnail_width"], photo["thumbnail_height"]) == (320, 160)
    thumbnail = await world.api.client.get(photo["thumbnail_url"])
    assert opened(thumbnail.content).size == (320, 160)


async def test_exif_gps_and_other_metadata_are_gone_and_orientation_applied(
    world: World,
) -> None:
    original = samples.jpeg_with_location(orientation=6)
    source = Image.open(io.BytesIO(original))
    assert source.getexif().get_ifd(0x8825)  # the sample really carries a GPS position
    assert {"exif", "icc_profile", "xmp", "comment"} <= set(source.info)

    wish = await world.wish()
    response = await upload(world, f"/v1/wishes/{wish['id']}/photos", original, world.resident)
    assert response.status_code == 201, response.text
    photo = response.json()
    # Orientation 6 means "turn 90° clockwise to view": stored upright, so 60 x 80.
    assert (photo["width"], photo["height"]) == (60, 80)

    for url in (photo["url"], photo["thumbnail_url"]):
        data = (await world.api.client.get(url)).content
        image = opened(data)
        assert len(image.getexif()) == 0
        assert not image.getexif().get_ifd(0x8825)
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info)
        for marker in (b"Exif", b"GPS", b"PhoneMaker", b"xmpmeta", b"3-201", b"ICC_PROFILE"):
            assert marker not in data, marker
        # The red left half of the picture is now on top.
        width, height = image.size
        top, bottom = image.getpixel((width // 2, 2)), image.getpixel((width // 2, height - 3))
        assert isinstance(top, tuple)
        assert isinstance(bottom, tuple)
        assert top[0] > 150 > top[2]
        assert bottom[2] > 150 > bottom[0]


@pytest.mark.parametrize("kind", sorted(samples.NOT_IMAGES))
async def test_anything_but_jpeg_png_webp_is_refused_whatever_its_name(
    world: World, photo_dir: Path, kind: str
) -> None:
    wish = await world.wish()
    response = await upload(
        world, f"/v1/wishes/{wish['id']}/photos", samples.NOT_IMAGES[kind], world.resident
    )
    assert_problem(response, 415, "unsupported_image")
    assert stored_files(photo_dir) == []
    listed = await world.api.client.get(f"/v1/wishes/{wish['id']}/photos", headers=world.resident)
    assert listed.json()["items"] == []


async def test_the_body_must_be_multipart_with_a_file(world: World) -> None:
    client = world.api.client
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    raw = await client.post(
        path, content=samples.png(), headers={**world.resident, "Content-Type": "image/png"}
    )
    assert_problem(raw, 415, "multipart_required")
    no_file = await client.post(path, data={"caption": "x"}, files={}, headers=world.resident)
    assert_problem(no_file, 415, "multipart_required")  # urlencoded, without files
    wrong_field = await client.post(
        path, files={"image": ("a.png", samples.png(), "image/png")}, headers=world.resident
    )
    body = assert_problem(wrong_field, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "file"]
    two = await client.post(
        path,
        files=[("file", ("a.png", samples.png(), "image/png"))] * 2,
        headers=world.resident,
    )
    assert_problem(two, 422, "validation_failed")
    broken = await client.post(
        path,
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={**world.resident, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_problem(broken, 400, "malformed_multipart")


async def test_upload_needs_a_token_before_the_body_is_read(world: World) -> None:
    wish = await world.wish()
    response = await upload(world, f"/v1/wishes/{wish['id']}/photos", samples.png(), {})
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("photo_settings", [{"photo_max_bytes": 50_000}], indirect=True)
async def test_oversized_uploads_are_refused_while_reading(world: World, photo_dir: Path) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    # A real image just over the limit (noise does not compress).
    noisy = Image.effect_noise((200, 200), 80).convert("RGB")
    big = samples.encode(noisy, "PNG")
    assert len(big) > 50_000
    declared = await upload(world, path, big, world.resident, filename="small.png")
    body = assert_problem(declared, 413, "image_too_large")
    assert body["max_bytes"] == 50_000

    # Without Content-Length (chunked): refused once the stream passes the limit.
    boundary = "photo-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        for _ in range(10_000):  # 640 MB if nobody stopped reading
            sent += 65536
            yield b"\xff" * 65536

    chunked = await world.api.client.post(
        path,
        content=endless(),
        headers={**world.resident, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(chunked, 413, "image_too_large")
    assert sent < 1_000_000
    # The same answers under an Idempotency-Key (too big to remember: the route answers).
    keyed = {**world.resident, "Idempotency-Key": "big-photo"}
    assert_problem(
        await upload(world, path, big, keyed, filename="small.png"), 413, "image_too_large"
    )
    sent = 0
    chunked_keyed = await world.api.client.post(
        path,
        content=endless(),
        headers={**keyed, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(chunked_keyed, 413, "image_too_large")
    assert sent < 1_000_000
    assert stored_files(photo_dir) == []
    assert (await world.api.sql("SELECT count(*) FROM idempotency_keys"))[0][0] == 0


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30000, 30000),  # 900 megapixels: Pillow's own guard would raise too
        (8000, 6000),  # 48 megapixels: over our 40, under Pillow's default limit
    ],
)
async def test_decompression_bombs_are_refused_before_decoding(
    world: World, photo_dir: Path, width: int, height: int
) -> None:
    bomb = samples.png_declaring(width, height)
    assert len(bomb) < 1000
    wish = await world.wish()
    response = await upload(
        world, f"/v1/wishes/{wish['id']}/photos", bomb, world.resident, filename="bomb.png"
    )
    body = assert_problem(response, 422, "image_too_many_pixels")
    assert body["max_pixels"] == 40_000_000
    assert stored_files(photo_dir) == []


async def test_expired_and_tampered_links_are_refused(world: World) -> None:
    client = world.api.client
    wish = await world.wish()
    photo = (
        await upload(world, f"/v1/wishes/{wish['id']}/photos", samples.jpeg(), world.resident)
    ).json()
    url = urlsplit(photo["url"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    photo_id = int(photo["id"])

    def link(path: str, **changes: object) -> str:
        params = {**query, **{key: str(value) for key, value in changes.items()}}
        return path + "?" + "&".join(f"{key}={value}" for key, value in params.items())

    assert (await client.get(link(url.path))).status_code == 200
    signature = query["signature"]
    tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert_problem(await client.get(link(url.path, signature=tampered)), 403, "photo_link_invalid")
    later = int(query["expires"]) + 3600
    assert_problem(await client.get(link(url.path, expires=later)), 403, "photo_link_invalid")
    # A full-size signature does not open the thumbnail, nor another photo.
    thumbnail_path = url.path.replace("/full", "/thumbnail")
    assert_problem(await client.get(link(thumbnail_path)), 403, "photo_link_invalid")
    other = await upload(world, f"/v1/wishes/{wish['id']}/photos", samples.png(), world.resident)
    other_path = url.path.replace(f"/{photo_id}/", f"/{other.json()['id']}/")
    assert_problem(await client.get(link(other_path)), 403, "photo_link_invalid")
    # Correctly signed, but over.
    past = int(time.time()) - 1
    [(storage_key,)] = await world.api.sql(
        "SELECT storage_key FROM photos WHERE id = :id", id=photo_id
    )
    expired = signing.sign(
        world.api.settings.secret_key,
        photo_id,
        str(storage_key),
        signing.PhotoVariant.full,
        past,
    )
    assert_problem(
        await client.get(link(url.path, expires=past, signature=expired.signature)),
        403,
        "photo_link_expired",
    )
    assert (await client.get(url.path)).status_code == 422  # no signature at all
    assert (await client.get(link(url.path.replace("/full", "/original")))).status_code == 422


async def test_a_link_never_opens_a_later_photo_with_the_same_id(world: World) -> None:
    """SQLite may give the id of a deleted last row to the next one: a link handed out for
    the deleted photo must not open the new one (someone else's, on another wish)."""
    client = world.api.client
    mine = await world.wish()
    path = f"/v1/wishes/{mine['id']}/photos"
    first = (await upload(world, path, samples.jpeg(), world.resident)).json()
    assert (
        await client.delete(f"/v1/photos/{first['id']}", headers=world.resident)
    ).status_code == 204
    other_resident, _ = await world.user("邻居")
    theirs = await world.wish(by=other_resident)
    later = await upload(world, f"/v1/wishes/{theirs['id']}/photos", samples.png(), other_resident)
    assert later.status_code == 201
    url = urlsplit(first["url"])
    stale = await client.get(f"{url.path}?{url.query}")
    assert stale.status_code in (403, 404)
    if later.json()["id"] == first["id"]:  # the id came back (SQLite)
        assert_problem(stale, 403, "photo_link_invalid")


async def test_photos_follow_the_wish_visibility(world: World) -> None:
    client = world.api.client
    pending = await world.wish(approve=False)
    path = f"/v1/wishes/{pending['id']}/photos"
    assert (await upload(world, path, samples.png(), world.resident)).status_code == 201

    stranger, _ = await world.user("路人")
    member, _ = await world.member()
    for outsider in (stranger, member):
        assert_problem(await client.get(path, headers=outsider), 404, "not_found")
        assert_problem(await upload(world, path, samples.png(), outsider), 404, "not_found")
    organizer_listing = await client.get(path, headers=world.organizer)
    assert organizer_listing.status_code == 200
    assert len(organizer_listing.json()["items"]) == 1
    # An organizer of another street sees nothing of it.
    other_organizer, other_id = await world.user("别的街道干部")
    granted = await client.post(
        f"/v1/regions/{world.regions['S2']}/organizers",
        json={"user_id": other_id},
        headers=world.admin,
    )
    assert granted.status_code == 201
    assert_problem(await client.get(path, headers=other_organizer), 404, "not_found")

    # Once open, everyone signed in sees the photos, but only the owner and organizers add.
    approved = await client.post(f"/v1/wishes/{pending['id']}/approve", headers=world.organizer)
    assert approved.status_code == 200
    assert (await client.get(path, headers=stranger)).status_code == 200
    assert_problem(await upload(world, path, samples.png(), member), 403, "forbidden")
    by_organizer = await upload(world, path, samples.png(), world.organizer)
    assert by_organizer.status_code == 201
    assert (await client.get(path)).status_code == 401


async def test_closed_wishes_take_no_photos(world: World) -> None:
    wish = await world.wish()
    cancelled = await world.api.client.post(
        f"/v1/wishes/{wish['id']}/cancel", json={"reason": "不需要了"}, headers=world.resident
    )
    assert cancelled.status_code == 200, cancelled.text
    response = await upload(world, f"/v1/wishes/{wish['id']}/photos", samples.png(), world.resident)
    body = assert_problem(response, 409, "invalid_state")
    assert body["current_state"] == "cancelled"


@pytest.mark.parametrize("photo_settings", [{"photo_max_per_wish": 2}], indirect=True)
async def test_a_wish_takes_a_limited_number_of_photos(world: World, photo_dir: Path) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    for _ in range(2):
        assert (await upload(world, path, samples.png(), world.resident)).status_code == 201
    body = assert_problem(
        await upload(world, path, samples.png(), world.resident), 409, "too_many_photos"
    )
    assert body["max_photos"] == 2
    assert len(stored_files(photo_dir)) == 4


async def test_proof_is_uploaded_by_the_claimer_only(world: World) -> None:
    client = world.api.client
    wish = await world.wish()
    claimer, _ = await world.member()
    other_member, _ = await world.member()
    claim = (await world.claim(wish["id"], claimer)).json()
    path = f"/v1/claims/{claim['id']}/proof"

    uploaded = await upload(world, path, samples.jpeg(), claimer)
    assert uploaded.status_code == 201, uploaded.text
    proof = uploaded.json()
    assert proof["kind"] == "proof"
    assert proof["claim_id"] == claim["id"]
    assert proof["wish_id"] == wish["id"]

    assert_problem(await upload(world, path, samples.jpeg(), world.resident), 403, "forbidden")
    assert_problem(await upload(world, path, samples.jpeg(), other_member), 404, "not_found")
    assert_problem(
        await upload(world, "/v1/claims/999999/proof", samples.jpeg(), claimer), 404, "not_found"
    )

    # The claimer, the resident and the organizer see the proof; others do not.
    for viewer in (claimer, world.resident, world.organizer):
        listed = await client.get(path, headers=viewer)
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [proof["id"]]
        assert (await client.get(listed.json()["items"][0]["url"])).status_code == 200
    assert_problem(await client.get(path, headers=other_member), 404, "not_found")
    # Proof is not among the wish's own photos.
    wish_photos = await client.get(f"/v1/wishes/{wish['id']}/photos", headers=world.resident)
    assert wish_photos.json()["items"] == []

    # Fulfilled just now: more proof is welcome. Withdrawn: none.
    fulfilled = await client.post(
        f"/v1/claims/{claim['id']}/fulfil", json={"note": "送到了"}, headers=claimer
    )
    assert fulfilled.status_code == 200
    assert (await upload(world, path, samples.jpeg(), claimer)).status_code == 201
    second_wish = await world.wish()
    second_claim = (await world.claim(second_wish["id"], claimer)).json()
    withdrawn = await client.post(f"/v1/claims/{second_claim['id']}/withdraw", headers=claimer)
    assert withdrawn.status_code == 200
    body = assert_problem(
        await upload(world, f"/v1/claims/{second_claim['id']}/proof", samples.jpeg(), claimer),
        409,
        "invalid_state",
    )
    assert body["current_state"] == "withdrawn"


async def test_fulfilled_long_ago_takes_no_more_proof(world: World) -> None:
    wish = await world.wish()
    claimer, _ = await world.member()
    claim = (await world.claim(wish["id"], claimer)).json()
    fulfilled = await world.api.client.post(
        f"/v1/claims/{claim['id']}/fulfil", json={"note": "好了"}, headers=claimer
    )
    assert fulfilled.status_code == 200
    await world.api.sql(
        "UPDATE claims SET fulfilled_at = :at WHERE id = :id",
        at=utcnow() - timedelta(hours=25),
        id=int(claim["id"]),
    )
    response = await upload(world, f"/v1/claims/{claim['id']}/proof", samples.jpeg(), claimer)
    assert_problem(response, 409, "invalid_state")


async def test_delete_by_uploader_owner_or_organizer(world: World, photo_dir: Path) -> None:
    client = world.api.client
    wish = await world.wish()
    path = f"/v1/wishes/{wish['id']}/photos"
    photos = [(await upload(world, path, samples.png(), world.resident)).json() for _ in range(2)]
    member, _ = await world.member()
    stranger_wish = await world.wish(approve=False)
    hidden = (
        await upload(
            world, f"/v1/wishes/{stranger_wish['id']}/photos", samples.png(), world.resident
        )
    ).json()

    assert_problem(
        await client.delete(f"/v1/photos/{photos[0]['id']}", headers=member), 403, "forbidden"
    )
    assert_problem(
        await client.delete(f"/v1/photos/{hidden['id']}", headers=member), 404, "not_found"
    )
    assert_problem(await client.delete("/v1/photos/987654", headers=member), 404, "not_found")

    by_owner = await client.delete(f"/v1/photos/{photos[0]['id']}", headers=world.resident)
    assert by_owner.status_code == 204
    by_organizer = await client.delete(f"/v1/photos/{photos[1]['id']}", headers=world.organizer)
    assert by_organizer.status_code == 204
    assert_problem(
        await client.delete(f"/v1/photos/{photos[1]['id']}", headers=world.resident),
        404,
        "not_found",
    )
    assert (await client.get(path, headers=world.resident)).json()["items"] == []
    # The bytes are gone too, and the old links with them.
    assert len(stored_files(photo_dir)) == 2  # only the hidden wish's photo is left
    assert_problem(await client.get(photos[0]["url"]), 404, "not_found")

    # A claimer deletes their own proof.
    claimer, _ = await world.member()
    claim = (await world.claim(wish["id"], claimer)).json()
    proof = (await upload(world, f"/v1/claims/{claim['id']}/proof", samples.png(), claimer)).json()
    assert (await client.delete(f"/v1/photos/{proof['id']}", headers=claimer)).status_code == 204


async def test_pages_of_photos(world: World) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    ids = [
        (await upload(world, path, samples.png(), world.resident)).json()["id"] for _ in range(3)
    ]
    first = (await world.api.client.get(f"{path}?limit=2", headers=world.resident)).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    rest = await world.api.client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=world.resident
    )
    assert [item["id"] for item in rest.json()["items"]] == ids[2:]
    assert rest.json()["next_cursor"] is None
    assert (
        await world.api.client.get(f"{path}?limit=101", headers=world.resident)
    ).status_code == 422


@pytest.mark.parametrize("photo_settings", [{"photo_max_per_wish": 2}], indirect=True)
async def test_concurrent_uploads_never_pass_the_limit(world: World, photo_dir: Path) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    responses = await asyncio.gather(
        *(upload(world, path, samples.png(), world.resident) for _ in range(6))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 201, 409, 409, 409, 409]
    # The refused ones left nothing behind.
    assert len(stored_files(photo_dir)) == 4
    listed = await world.api.client.get(path, headers=world.resident)
    assert len(listed.json()["items"]) == 2


async def test_a_retried_upload_is_stored_once(world: World, photo_dir: Path) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    client = world.api.client
    headers = {**world.resident, "Idempotency-Key": "upload-1"}
    image = samples.png()
    first = await client.post(path, files={"file": ("a.png", image, "image/png")}, headers=headers)
    assert first.status_code == 201, first.text
    # The retry is built again, so its multipart boundary is a new random one.
    retry = await client.post(path, files={"file": ("a.png", image, "image/png")}, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert len(stored_files(photo_dir)) == 2
    # Another image under the same key is another request.
    other = await client.post(
        path, files={"file": ("a.png", samples.jpeg(), "image/jpeg")}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("photo_settings", [{"photo_upload_rate_limit": "2/minute"}], indirect=True)
async def test_uploads_are_rate_limited(world: World) -> None:
    path = f"/v1/wishes/{(await world.wish())['id']}/photos"
    for _ in range(2):
        assert (await upload(world, path, samples.png(), world.resident)).status_code == 201
    limited = await upload(world, path, samples.png(), world.resident)
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
