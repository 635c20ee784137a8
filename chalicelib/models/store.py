"""Reading published models from S3: what serving needs and nothing more.

The Lambda's IAM policy allows only these reads (``GetObject`` on the model
prefix); publishing and managing versions is :mod:`chalicelib.models.registry`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    POINTER_FILE,
    check_version_id,
    deserialize,
    is_safe_segment,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from chalicelib.models.artifact import ModelArtifact


class ModelStore:
    """Versions of the model in an S3 bucket, and the pointer to the live one, read-only.

    Parameters
    ----------
    s3_client:
        A boto3 S3 client (its endpoint decides which S3 is used).
    bucket, prefix:
        Where the versions and ``latest.json`` live.
    """

    def __init__(self, s3_client: Any, bucket: str, prefix: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    @property
    def location(self) -> str:
        """``s3://bucket/prefix/``, for messages."""
        return f"s3://{self._bucket}/{self._prefix}/" if self._prefix else f"s3://{self._bucket}/"

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self._prefix, *parts) if p)

    def live_version(self) -> str | None:
        """The version named by the pointer, or None when nothing is published."""
        body = self._get(self._key(POINTER_FILE))
        if body is None:
            return None
        try:
            version = json.loads(body)["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{self._key(POINTER_FILE)} is not a valid pointer: {exc}") from exc
        return check_version_id(version)

    def read_manifest(self, version: str) -> dict[str, Any]:
        """The manifest of *version*."""
        key = self._key(check_version_id(version), MANIFEST_FILE)
        body = self._get(key)
        if body is None:
            raise ArtifactError(f"model version {version!r} has no {MANIFEST_FILE} at s3://{self._bucket}/{key}")
        try:
            manifest = json.loads(body)
        except ValueError as exc:
            raise ArtifactError(f"{key} is not valid JSON: {exc}") from exc
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{key} must hold a JSON object, found {type(manifest).__name__}")
        return manifest

    def load(self, version: str) -> ModelArtifact:
        """Download and verify *version*."""
        manifest = self.read_manifest(version)
        if manifest.get("version") != version:
            raise ArtifactError(f"manifest of {version!r} names version {manifest.get('version')!r}")
        key = self._key(version, MODEL_FILE)
        payload = self._get(key)
        if payload is None:
            raise ArtifactError(f"model version {version!r} has no {MODEL_FILE} at s3://{self._bucket}/{key}")
        return deserialize(payload, manifest)

    #: Page size of the listings; small values let tests exercise pagination.
    _LIST_PAGE_SIZE = 1000

    def version_ids(self) -> list[str]:
        """Ids of the version folders under the prefix, newest first."""
        folder = f"{self._prefix}/" if self._prefix else ""
        paginator = self._s3.get_paginator("list_objects_v2")
        versions = []
        for page in paginator.paginate(
            Bucket=self._bucket, Prefix=folder, Delimiter="/",
            PaginationConfig={"PageSize": self._LIST_PAGE_SIZE},
        ):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(folder):].rstrip("/")
                # publish never writes such a folder; it cannot be loaded or deleted by id
                if is_safe_segment(name):
                    versions.append(name)
                else:
                    logger.debug("ignoring folder %r: not a version id", name)
        return sorted(versions, reverse=True)

    def _get(self, key: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        return response["Body"].read()
