"""The storage backends on their own, and the API on the S3 backend against moto's
in-process S3 (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto import mock_aws

from app.core.config import ConfigurationError
from app.main import create_app
from app.photos.storage import LocalStorage, PhotoStorage, S3Storage, check_key, new_key
from tests.conftest import Api, make_settings
from tests.photos import samples
from tests.world import build_world

pytestmark = pytest.mark.anyio

BUCKET = "microwish-photos"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


async def round_trip(storage: PhotoStorage) -> None:
    key = f"{new_key()}/full.jpg"
    assert await storage.get(key) is None
    await storage.put(key, b"jpeg bytes", content_type="image/jpeg")
    assert await storage.get(key) == b"jpeg bytes"
    await storage.put(key, b"replaced", content_type="image/jpeg")
    assert await storage.get(key) == b"replaced"
    await storage.delete(key)
    assert await storage.get(key) is None
    await storage.delete(key)  # deleting what is not there is fine


def test_keys_cannot_leave_the_folder() -> None:
    assert check_key("ab/abcdef/full.jpg")
    for bad in ("../etc/passwd", "/abs/full.jpg", "a/../b.jpg", "a\\b.jpg", "a//b", "", "a/.jpg"):
        with pytest.raises(ValueError, match="invalid storage key"):
            check_key(bad)


async def test_local_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "photos")
    await round_trip(storage)
    key = f"{new_key()}/thumbnail.jpg"
    await storage.put(key, b"x", content_type="image/jpeg")
    assert (tmp_path / "photos" / key).read_bytes() == b"x"
    assert not list((tmp_path / "photos").rglob(".upload-*"))  # no temporary files left
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.get("../../secret")


async def test_s3_storage(aws: None) -> None:
    storage = S3Storage(bucket=BUCKET, prefix="photos/", region="us-east-1")
    await round_trip(storage)
    key = f"{new_key()}/full.jpg"
    await storage.put(key, b"x", content_type="image/jpeg")
    head = boto3.client("s3", region_name="us-east-1").head_object(
        Bucket=BUCKET, Key=f"photos/{key}"
    )
    assert head["ContentType"] == "image/jpeg"


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ConfigurationError, match="PHOTO_S3_BUCKET"):
        make_settings("sqlite:///unused.db", photo_storage="s3")


async def test_the_api_on_s3(aws: None, clean_database: str, tmp_path: Path) -> None:
    settings = make_settings(
        clean_database,
        photo_storage="s3",
        photo_s3_bucket=BUCKET,
        photo_s3_region="us-east-1",
        photo_s3_access_key_id="testing",
        photo_s3_secret_access_key="testing",
        photo_dir=tmp_path / "unused",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            world = await build_world(Api(client=client, settings=settings))
            wish = await world.wish()
            uploaded = await client.post(
                f"/v1/wishes/{wish['id']}/photos",
                files={"file": ("a.jpg", samples.jpeg_with_location(), "image/jpeg")},
                headers=world.resident,
            )
            assert uploaded.status_code == 201, uploaded.text
            photo = uploaded.json()
            image = await client.get(photo["url"])
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/jpeg"
            assert b"GPS" not in image.content
            objects = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
            assert len(objects["Contents"]) == 2
            deleted = await client.delete(f"/v1/photos/{photo['id']}", headers=world.resident)
            assert deleted.status_code == 204
            objects = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
            assert objects.get("KeyCount") == 0
    assert not (tmp_path / "unused").exists()
