"""Where photo bytes live: a small interface (put, get, delete by key) with a local-folder
default and an S3-compatible backend (AWS S3, MinIO, Aliyun OSS, Tencent COS, …).

Keys are made by ``new_key()`` (random, so a key says nothing about a wish or a person) and
stored on the ``photos`` row; a photo's variants are ``<key>/<variant>.jpg``. Blocking I/O
(file system, boto3) runs in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from app.core.config import ConfigurationError, Settings

# Path-like keys of safe segments: no "..", no absolute paths, no backslashes.
_KEY = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*(?:\.[a-z]+)?$")
MAX_KEY_LENGTH = 200


class PhotoStorage(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a key that is not there is not an error."""
        ...


def new_key() -> str:
    """A random storage key, fanned out over 256 folders: ``3f/3f9c…``."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise ValueError("invalid storage key")
    return key


class LocalStorage:
    """Files under a folder (``MICROWISH_PHOTO_DIR``), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file beside it and rename: a reader never sees half a photo.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Tidy the photo's folder once its last variant is gone (not the fan-out folders).
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await anyio.to_thread.run_sync(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        return await anyio.to_thread.run_sync(self._get, key)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete, key)


class S3Storage:
    """Objects in an S3-compatible bucket, through boto3 (``pip install 'microwish[s3]'``,
    imported only when this backend is chosen). Without explicit keys boto3 looks in its
    usual places (``AWS_*`` environment variables, an instance role)."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        if client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise ConfigurationError(
                    "MICROWISH_PHOTO_STORAGE=s3 needs boto3: pip install 'microwish[s3]'"
                ) from exc
            # boto3 clients are thread-safe (sessions are not): one client, many threads.
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
            )
        self.client = client

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._object(key), Body=data, ContentType=content_type
        )

    def _get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body

    def _delete(self, key: str) -> None:
        # S3 answers a delete of a missing key with success.
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await anyio.to_thread.run_sync(self._put, key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        return await anyio.to_thread.run_sync(self._get, key)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete, key)


def storage_from_settings(settings: Settings) -> PhotoStorage:
    if settings.photo_storage == "s3":
        if not settings.photo_s3_bucket:
            raise ConfigurationError("MICROWISH_PHOTO_STORAGE=s3 needs MICROWISH_PHOTO_S3_BUCKET")
        secret = settings.photo_s3_secret_access_key
        return S3Storage(
            bucket=settings.photo_s3_bucket,
            prefix=settings.photo_s3_prefix,
            endpoint_url=settings.photo_s3_endpoint_url,
            region=settings.photo_s3_region,
            access_key_id=settings.photo_s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
        )
    return LocalStorage(settings.photo_dir)
