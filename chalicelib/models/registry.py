"""Publishing and managing model versions in S3: what operators and the retrain pipeline do.

Serving never writes: it reads through :class:`chalicelib.models.store.ModelStore`,
which this class extends with uploads, the pointer, listings, pruning and rollback.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    POINTER_FILE,
    ModelArtifact,
    check_version_id,
    deserialize,
    is_safe_segment,
    new_version_id,
    serialize,
)
from chalicelib.models.store import ModelStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    """One version folder as listed: its manifest's summary, or why it cannot be read.

    A folder whose manifest is missing or unreadable has ``error`` set and the
    manifest fields None.
    """

    version: str
    live: bool
    created_at: str | None = None
    algorithm: str | None = None
    training_cutoff: str | None = None
    metrics: dict[str, Any] | None = None
    counts: dict[str, int] | None = None
    forced: bool = False
    error: str | None = None

    @classmethod
    def from_manifest(cls, version: str, live: bool, manifest: dict[str, Any]) -> "VersionInfo":
        """The summary of *version* from its manifest."""
        return cls(
            version=version, live=live, created_at=manifest.get("created_at"), algorithm=manifest.get("algorithm"),
            training_cutoff=manifest.get("training_cutoff"), metrics=manifest.get("metrics"),
            counts=manifest.get("counts"), forced=bool(manifest.get("forced", False)),
        )

    def metric(self, name: str) -> float | None:
        """Metric *name* (e.g. ``ndcg@10``): the candidate model's from the retrain, else a top-level one."""
        if not isinstance(self.metrics, dict):
            return None
        candidate = self.metrics.get("candidate")
        for source in (candidate if isinstance(candidate, dict) else {}, self.metrics):
            value = source.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


class ModelRegistry(ModelStore):
    """Publishes, lists, prunes and rolls back the versions of a :class:`ModelStore`.

    Parameters are those of :class:`ModelStore`.
    """

    def ensure_bucket(self, region: str) -> bool:
        """Create the bucket in *region* unless it exists; True when it was created."""
        existing = {bucket["Name"] for bucket in self._s3.list_buckets().get("Buckets", [])}
        if self._bucket in existing:
            return False
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        self._s3.create_bucket(Bucket=self._bucket, **location)
        return True

    def publish(self, artifact: ModelArtifact, *, make_live: bool = True) -> str:
        """Upload *artifact* as a new version; move the pointer to it last.

        Returns the new version id.
        """
        version = new_version_id()
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        payload, manifest = serialize(artifact, version, created_at)
        return self.upload(payload, manifest, make_live=make_live)

    def upload(self, payload: bytes, manifest: dict[str, Any], *, make_live: bool = True) -> str:
        """Upload an already serialised version (e.g. a cached one) after verifying it.

        Returns its version id.
        """
        version = deserialize(payload, manifest).version
        self._s3.put_object(
            Bucket=self._bucket, Key=self._key(version, MODEL_FILE), Body=payload,
            ContentType="application/octet-stream",
        )
        self._s3.put_object(
            Bucket=self._bucket, Key=self._key(version, MANIFEST_FILE),
            Body=json.dumps(manifest, indent=2).encode(), ContentType="application/json",
        )
        logger.info("uploaded model version %s (%d bytes)", version, len(payload))
        if make_live:
            self.set_live(version)
        return version

    def set_live(self, version: str) -> None:
        """Point ``latest.json`` at an already uploaded *version*."""
        self.read_manifest(version)  # refuse to point at a version that is not there
        pointer = {"version": version, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._s3.put_object(
            Bucket=self._bucket, Key=self._key(POINTER_FILE),
            Body=json.dumps(pointer).encode(), ContentType="application/json",
        )
        logger.info("live model is now %s", version)

    def list_versions(self) -> list[VersionInfo]:
        """Every version under the prefix, newest first, summarised from its manifest.

        A version folder whose manifest is missing or unreadable is listed with
        its ``error`` instead of failing the whole listing.
        """
        live = self.live_version()
        entries = []
        for version in self.version_ids():
            try:
                entries.append(VersionInfo.from_manifest(version, version == live, self.read_manifest(version)))
            except ArtifactError as exc:
                entries.append(VersionInfo(version=version, live=version == live, error=str(exc)))
        return entries

    def delete_version(self, version: str) -> None:
        """Delete every object under ``{prefix}/{version}/`` (model, manifest, reports).

        Raises
        ------
        ArtifactError
            When *version* is live or has no objects.
        """
        check_version_id(version)
        # S3 has no transactions: a pointer moved by someone else between this
        # check and the delete is not caught, but the common mistake is.
        if version == self.live_version():
            raise ArtifactError(f"model version {version!r} is live; roll back before deleting it")
        keys = self._keys_under(self._key(version) + "/")
        if not keys:
            raise ArtifactError(f"model version {version!r} does not exist under s3://{self._bucket}/{self._prefix}/")
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            response = self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True},
            )
            if response.get("Errors"):
                failed = ", ".join(f"{e.get('Key')} ({e.get('Code')})" for e in response["Errors"])
                raise ArtifactError(f"could not delete all of model version {version!r}: {failed}")
        logger.info("deleted model version %s (%d objects)", version, len(keys))

    def prune(self, keep: int) -> list[str]:
        """Delete all versions but the *keep* newest and the live one.

        Returns the deleted version ids, newest first.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ArtifactError(f"keep must be an integer >= 1, got {keep!r}")
        live = self.live_version()
        # Broken folders count by id like any other: the newest one may be a
        # version still being uploaded (model written, manifest not yet).
        versions = self.version_ids()
        kept = set(versions[:keep]) | {live}
        deleted = []
        for version in versions:
            if version not in kept:
                self.delete_version(version)
                deleted.append(version)
        return deleted

    def rollback(self, to: str | None = None) -> str:
        """Make *to* live, or by default the newest valid version older than the live one.

        The target is downloaded and verified first, so the pointer never
        moves to a corrupted version; older broken versions are skipped.
        Returns the new live version.

        Raises
        ------
        ArtifactError
            When *to* does not load, or there is no valid older version.
        """
        if to is not None:
            self.load(check_version_id(to))
            self.set_live(to)
            return to
        live = self.live_version()
        if live is None:
            raise ArtifactError("no live version to roll back from")
        for version in self.version_ids():
            if version >= live:  # ids sort by creation time
                continue
            try:
                self.load(version)
            except ArtifactError as exc:
                logger.warning("skipping model version %s: %s", version, exc)
                continue
            self.set_live(version)
            return version
        raise ArtifactError(f"no valid model version older than the live {live!r} to roll back to")

    def put_file(self, version: str, name: str, body: bytes, content_type: str) -> str:
        """Upload an extra file (e.g. ``report.md``) beside an existing *version*.

        Returns its S3 key.
        """
        check_version_id(version)
        if not is_safe_segment(name) or name in (MODEL_FILE, MANIFEST_FILE):
            raise ArtifactError(
                f"invalid file name {name!r}: use a plain name (letters, digits, '._-'), not {MODEL_FILE} or {MANIFEST_FILE}"
            )
        self.read_manifest(version)  # a file without its version would show up as a broken version
        key = self._key(version, name)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def file_address(self, version: str, name: str) -> str | None:
        """The ``s3://`` address of file *name* beside *version* (e.g. its ``report.md``), None when absent."""
        check_version_id(version)
        key = self._key(version, name)
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return f"s3://{self._bucket}/{key}"

    def _keys_under(self, folder: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, Prefix=folder, PaginationConfig={"PageSize": self._LIST_PAGE_SIZE}
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
