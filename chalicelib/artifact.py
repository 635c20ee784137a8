"""The model artifact: the one format training writes and serving reads.

A published version lives under ``{prefix}/{version}/`` in S3:

* ``model.npz`` -- plain numeric and fixed-width unicode arrays, read with
  ``allow_pickle=False``:

  ================  =========  ==========================================
  name              dtype      shape / meaning
  ================  =========  ==========================================
  item_factors      float32    (n_items, factors)
  user_factors      float32    (n_users, factors)
  user_ids          unicode    (n_users,) external user ids
  item_ids          unicode    (n_items,) external item ids
  item_popularity   float32    (n_items,) training interactions per item
  seen_indptr       int64      (n_users + 1,) CSR row pointer of the
                               user-item interactions seen in training
  seen_indices      int32      (n_interactions,) CSR column indices
  seen_values       float32    (n_interactions,) the interaction strengths
                               training used (for real-time fold-in)
  ================  =========  ==========================================

* ``manifest.json`` -- version, creation time, algorithm and
  hyperparameters, counts, the sha256 of ``model.npz``, metrics and the
  training cutoff.

``{prefix}/latest.json`` names the live version. Publishers write the version
first and move the pointer last, so a reader never sees a half-written model.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from chalicelib.errors import ArtifactError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "latest.json"

_VERSION_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
_FILE_NAME_PATTERN = _VERSION_PATTERN  # same rule: one safe path segment, no leading dot

#: name -> (dtype kind or exact dtype, number of dimensions)
_ARRAY_SPEC: dict[str, tuple[np.dtype | str, int]] = {
    "item_factors": (np.dtype(np.float32), 2),
    "user_factors": (np.dtype(np.float32), 2),
    "user_ids": ("U", 1),
    "item_ids": ("U", 1),
    "item_popularity": (np.dtype(np.float32), 1),
    "seen_indptr": (np.dtype(np.int64), 1),
    "seen_indices": (np.dtype(np.int32), 1),
    "seen_values": (np.dtype(np.float32), 1),
}


@dataclass(frozen=True)
class ModelArtifact:
    """A trained matrix-factorisation model and what serving needs beside it.

    Build one with :func:`make_artifact`, which converts and checks the
    arrays; ``version`` and ``created_at`` are set when it is published.
    """

    item_factors: np.ndarray
    user_factors: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_popularity: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    seen_values: np.ndarray
    algorithm: str
    hyperparameters: dict[str, Any]
    training_cutoff: str | None = None
    metrics: dict[str, Any] | None = None
    version: str | None = None
    created_at: str | None = None
    #: Published with --force although it failed the quality gate.
    forced: bool = False

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def n_interactions(self) -> int:
        return int(self.seen_indices.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored in ``model.npz``, by name."""
        return {name: getattr(self, name) for name in _ARRAY_SPEC}


def make_artifact(
    *,
    item_factors: np.ndarray,
    user_factors: np.ndarray,
    user_ids: Any,
    item_ids: Any,
    item_popularity: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    algorithm: str,
    hyperparameters: dict[str, Any],
    seen_values: np.ndarray | None = None,
    training_cutoff: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Convert arrays to the artifact dtypes and check their consistency.

    Ids may be any sequence; they are stored as strings. ``seen_values``
    defaults to one per interaction.

    Raises
    ------
    ArtifactError
        When shapes disagree or indices fall outside the item range.
    """
    artifact = ModelArtifact(
        item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
        user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
        user_ids=np.asarray([str(u) for u in user_ids], dtype=np.str_),
        item_ids=np.asarray([str(i) for i in item_ids], dtype=np.str_),
        item_popularity=np.ascontiguousarray(item_popularity, dtype=np.float32),
        seen_indptr=np.ascontiguousarray(seen_indptr, dtype=np.int64),
        seen_indices=np.ascontiguousarray(seen_indices, dtype=np.int32),
        seen_values=np.ascontiguousarray(
            np.ones(len(seen_indices)) if seen_values is None else seen_values, dtype=np.float32
        ),
        algorithm=algorithm,
        hyperparameters=dict(hyperparameters),
        training_cutoff=training_cutoff,
        metrics=metrics,
    )
    _check_arrays(artifact.arrays())
    return artifact


def _check_arrays(arrays: dict[str, np.ndarray], expected_factors: int | None = None) -> None:
    for name, (expected, ndim) in _ARRAY_SPEC.items():
        if name not in arrays:
            raise ArtifactError(f"{MODEL_FILE} has no array {name!r}")
        array = arrays[name]
        if isinstance(expected, str):
            if array.dtype.kind != expected:
                raise ArtifactError(f"{name} must hold strings, found dtype {array.dtype}")
        elif array.dtype != expected:
            raise ArtifactError(f"{name} must be {expected}, found {array.dtype}")
        if array.ndim != ndim:
            raise ArtifactError(f"{name} must have {ndim} dimension(s), found shape {array.shape}")

    item_factors, user_factors = arrays["item_factors"], arrays["user_factors"]
    n_items, n_factors = item_factors.shape
    n_users = user_factors.shape[0]
    if user_factors.shape[1] != n_factors:
        raise ArtifactError(
            f"user_factors has {user_factors.shape[1]} factors but item_factors has {n_factors}"
        )
    if expected_factors is not None and n_factors != expected_factors:
        raise ArtifactError(f"manifest says {expected_factors} factors, arrays have {n_factors}")
    _expect_length(arrays, "item_ids", n_items, "item_factors rows")
    _expect_length(arrays, "item_popularity", n_items, "item_factors rows")
    _expect_length(arrays, "user_ids", n_users, "user_factors rows")
    _expect_length(arrays, "seen_indptr", n_users + 1, "user_factors rows + 1")

    _expect_length(arrays, "seen_values", arrays["seen_indices"].shape[0], "seen_indices")
    for name in ("item_factors", "user_factors", "item_popularity", "seen_values"):
        if not np.isfinite(arrays[name]).all():
            raise ArtifactError(f"{name} contains NaN or infinite values")
    for name in ("user_ids", "item_ids"):
        ids = arrays[name]
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ArtifactError(f"{name} contains duplicate ids")

    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ArtifactError(
            "seen_indptr must start at 0, never decrease and end at len(seen_indices)"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise ArtifactError(f"seen_indices must lie in [0, {n_items})")


def _expect_length(arrays: dict[str, np.ndarray], name: str, length: int, what: str) -> None:
    if arrays[name].shape[0] != length:
        raise ArtifactError(
            f"{name} has length {arrays[name].shape[0]}, expected {length} ({what})"
        )


def new_version_id(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20261129T193000.123456Z-3f9a1c``.

    Microseconds keep two versions published in the same second in order.
    """
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{secrets.token_hex(3)}"


def check_version_id(version: str) -> str:
    """Return *version* if it is a safe S3 path segment, else raise ArtifactError."""
    if not isinstance(version, str) or not _VERSION_PATTERN.match(version):
        raise ArtifactError(f"invalid model version id {version!r}")
    return version


def serialize(artifact: ModelArtifact, version: str, created_at: str) -> tuple[bytes, dict[str, Any]]:
    """Encode *artifact* as ``model.npz`` bytes and its manifest.

    Returns
    -------
    (npz_bytes, manifest)
    """
    _check_arrays(artifact.arrays())
    buffer = io.BytesIO()
    np.savez(buffer, **artifact.arrays())
    payload = buffer.getvalue()
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": check_version_id(version),
        "created_at": created_at,
        "algorithm": artifact.algorithm,
        "hyperparameters": artifact.hyperparameters,
        "factors": artifact.n_factors,
        "counts": {
            "users": artifact.n_users,
            "items": artifact.n_items,
            "interactions": artifact.n_interactions,
        },
        "training_cutoff": artifact.training_cutoff,
        "metrics": artifact.metrics,
        "forced": artifact.forced,
        "model_file": MODEL_FILE,
        "model_bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return payload, manifest


def deserialize(payload: bytes, manifest: dict[str, Any]) -> ModelArtifact:
    """Decode and verify ``model.npz`` bytes against their manifest.

    Raises
    ------
    ArtifactError
        If the sha256 differs, an array is missing, has the wrong dtype or
        shape, holds objects, or the counts disagree with the manifest.
    """
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest must be a JSON object")
    for key in ("format_version", "version", "sha256", "algorithm", "hyperparameters", "factors", "counts"):
        if key not in manifest:
            raise ArtifactError(f"manifest has no {key!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"manifest format_version {manifest['format_version']!r} is not supported "
            f"(this code reads {FORMAT_VERSION})"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest["sha256"]:
        raise ArtifactError(
            f"sha256 of {MODEL_FILE} is {digest}, manifest says {manifest['sha256']}"
        )
    arrays = _read_npz(payload)
    _check_arrays(arrays, expected_factors=manifest["factors"])
    counts = manifest["counts"]
    actual = {
        "users": arrays["user_factors"].shape[0],
        "items": arrays["item_factors"].shape[0],
        "interactions": arrays["seen_indices"].shape[0],
    }
    for key, value in actual.items():
        if counts.get(key) != value:
            raise ArtifactError(f"manifest counts {key}={counts.get(key)!r}, arrays have {value}")
    return ModelArtifact(
        **{name: arrays[name] for name in _ARRAY_SPEC},
        algorithm=manifest["algorithm"],
        hyperparameters=dict(manifest["hyperparameters"]),
        training_cutoff=manifest.get("training_cutoff"),
        metrics=manifest.get("metrics"),
        version=manifest["version"],
        created_at=manifest.get("created_at"),
        forced=bool(manifest.get("forced", False)),
    )


def _read_npz(payload: bytes) -> dict[str, np.ndarray]:
    # np.load guesses the format from the bytes and falls back to unpickling
    # (refused here): insist on a zip archive first so the error names the real problem.
    if not payload.startswith(b"PK\x03\x04"):
        raise ArtifactError(f"{MODEL_FILE} is not a readable npz file (not a zip archive)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        # numpy refuses object arrays unless unpickling is allowed: say so plainly.
        raise ArtifactError(f"{MODEL_FILE} holds object arrays, which would need unpickling: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{MODEL_FILE} is not a readable npz file: {exc}") from exc


class ModelStore:
    """Versions of the model in an S3 bucket, and the pointer to the live one.

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

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self._prefix, *parts) if p)

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

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version under the prefix, newest first, summarised from its manifest.

        Each entry has ``version``, ``created_at``, ``algorithm``,
        ``training_cutoff``, ``metrics``, ``counts``, ``forced`` and ``live``
        (True for the version the pointer names). A version folder whose
        manifest is missing or unreadable is listed with an ``error`` field
        (the other fields None) instead of failing the whole listing.
        """
        live = self.live_version()
        entries = []
        for version in self._version_ids():
            entry: dict[str, Any] = {
                "version": version, "created_at": None, "algorithm": None, "training_cutoff": None,
                "metrics": None, "counts": None, "forced": False, "live": version == live,
            }
            try:
                manifest = self.read_manifest(version)
                if not isinstance(manifest, dict):
                    raise ArtifactError(f"{MANIFEST_FILE} of {version!r} is not a JSON object")
            except ArtifactError as exc:
                entry["error"] = str(exc)
            else:
                for field in ("created_at", "algorithm", "training_cutoff", "metrics", "counts"):
                    entry[field] = manifest.get(field)
                entry["forced"] = manifest.get("forced", False)
            entries.append(entry)
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
        versions = self._version_ids()
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
        for version in self._version_ids():
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
        if not isinstance(name, str) or not _FILE_NAME_PATTERN.match(name) or name in (MODEL_FILE, MANIFEST_FILE):
            raise ArtifactError(
                f"invalid file name {name!r}: use a plain name (letters, digits, '._-'), not {MODEL_FILE} or {MANIFEST_FILE}"
            )
        self.read_manifest(version)  # a file without its version would show up as a broken version
        key = self._key(version, name)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        return key

    #: Page size of the listings; small values let tests exercise pagination.
    _LIST_PAGE_SIZE = 1000

    def _version_ids(self) -> list[str]:
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
                if _VERSION_PATTERN.match(name):
                    versions.append(name)
                else:
                    logger.debug("ignoring folder %r: not a version id", name)
        return sorted(versions, reverse=True)

    def _keys_under(self, folder: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, Prefix=folder, PaginationConfig={"PageSize": self._LIST_PAGE_SIZE}
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def _get(self, key: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        return response["Body"].read()
