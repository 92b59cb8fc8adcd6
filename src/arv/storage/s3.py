"""Storage on any S3-compatible server (MinIO, AWS S3), with presigned download URLs."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from arv.storage.base import (
    ObjectNotFound,
    Storage,
    StorageError,
    StoredObject,
    content_disposition,
    guess_content_type,
)

# Objects never change under their keys: a CDN or a browser may keep them for a year.
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# The most keys S3 returns for one ListObjectsV2 request.
MAX_KEYS_PER_REQUEST = 1000

# Fail fast on a dead endpoint; the task layer retries with backoff.
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 2, "mode": "standard"},
    signature_version="s3v4",
    s3={"addressing_style": "path"},
)


class S3Storage(Storage):
    """Objects in one bucket, created on first use.

    Parameters: `bucket`, `endpoint_url` (None for AWS), `access_key`, `secret_key`, `region`.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
    ) -> None:
        if not bucket:
            raise ValueError("ARV_STORAGE_URL names no bucket (expected s3://bucket)")
        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=CLIENT_CONFIG,
        )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"bucket {self.bucket}: {exc}") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as create_exc:
                code = create_exc.response.get("Error", {}).get("Code")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"cannot create bucket {self.bucket}: {create_exc}") from create_exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 endpoint unreachable: {exc}") from exc
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=IMMUTABLE_CACHE,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self._ensure_bucket()
        try:
            # boto3's managed transfer: a multipart upload for a large file, a part at a time.
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type, "CacheControl": IMMUTABLE_CACHE},
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc

    def get_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ObjectNotFound(key) from exc
            raise StorageError(f"cannot read {key}: {exc}") from exc
        except (BotoCoreError, RetriesExceededError) as exc:
            # The managed download retries a broken transfer itself, then gives up with the latter.
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ObjectNotFound(key) from exc
            raise StorageError(f"cannot read {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot delete {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot look up {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot look up {key}: {exc}") from exc

    def list_objects(
        self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000
    ) -> list[StoredObject]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._ensure_bucket()
        found: list[StoredObject] = []
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            request["StartAfter"] = start_after
        # S3 caps a response at 1000 keys, and may return fewer while more remain: ask again with the
        # continuation token until `limit` are in hand or the listing is complete.
        while len(found) < limit:
            try:
                page = self.client.list_objects_v2(
                    **request, MaxKeys=min(limit - len(found), MAX_KEYS_PER_REQUEST)
                )
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"cannot list {self.bucket}/{prefix}: {exc}") from exc
            found.extend(
                StoredObject(item["Key"], item["Size"], item["LastModified"].astimezone(UTC))
                for item in page.get("Contents", [])
            )
            if not page.get("IsTruncated"):
                break
            request["ContinuationToken"] = page["NextContinuationToken"]
        return found

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        # S3 answers with these instead of the stored headers: a stored SVG or HTML is an attachment.
        content_type = guess_content_type(key)
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentType": content_type,
            "ResponseContentDisposition": content_disposition(key, content_type, filename),
        }
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()
