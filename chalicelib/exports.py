"""Per-user exports to S3 (batch recommendations, audiences): parts in a folder, then a manifest.

An export goes a chunk of users at a time: each chunk becomes one S3 object
(``part-00000.<ext>``, ``part-00001.<ext>``...) and ``_manifest.json`` is
written last, so a reader that finds the manifest finds every part. Users
erased since the model was trained are left out, their erasure markers read
by key a chunk at a time (:data:`ErasureReader`, ``EventLog.erasures``); the
answers of the audience routes leave them out by the same rule
(:func:`erased_since`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from chalicelib.errors import ModelUnavailable
from chalicelib.models.artifact import ModelArtifact
from chalicelib.models.store import ModelStore

MANIFEST_NAME = "_manifest.json"

#: Reads when each of some users was erased (``EventLog.erasures``); users never erased are absent.
ErasureReader = Callable[[list[str]], dict[str, datetime]]


def erased_since(erased_at: Mapping[str, datetime], user_ids: list[str], cutoff: datetime | None) -> np.ndarray:
    """A boolean mask over *user_ids*: True for those a model trained up to *cutoff* must not show.

    A user erased at or after the cutoff is still in the model's factors
    until the next retrain: left out. One erased before it and active since
    is a new user of the model (it only saw what came after): kept. Without
    a cutoff every erased user is left out.
    """
    return np.fromiter((user in erased_at and (cutoff is None or erased_at[user] >= cutoff) for user in user_ids),
                       dtype=bool, count=len(user_ids))


def unerased(user_ids: list[str], erasures: ErasureReader | None, cutoff: datetime | None) -> np.ndarray:
    """A boolean mask over *user_ids* of those an export may hold (all of them when *erasures* is None)."""
    if erasures is None:
        return np.ones(len(user_ids), dtype=bool)
    return ~erased_since(erasures(user_ids), user_ids, cutoff)


class ExportFolder:
    """The S3 folder an export writes its parts and manifest into.

    Parameters
    ----------
    s3_client: a boto3 S3 client.
    bucket, prefix: where the parts go (``s3://bucket/prefix/part-…``).
    """

    def __init__(self, s3_client: Any, bucket: str, prefix: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    def key(self, name: str) -> str:
        """The S3 key of *name* in the folder."""
        return f"{self._prefix}/{name}" if self._prefix else name

    def put(self, name: str, body: bytes, content_type: str) -> str:
        """Write one object; returns its ``s3://`` address."""
        self._s3.put_object(Bucket=self._bucket, Key=self.key(name), Body=body, ContentType=content_type)
        return f"s3://{self._bucket}/{self.key(name)}"

    def put_manifest(self, manifest: dict[str, Any]) -> str:
        """Write ``_manifest.json``: the last object of an export."""
        return self.put(MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), "application/json")


def open_export(models: ModelStore, s3_client: Any, bucket: str, prefix: str,
                version: str | None = None) -> tuple[ModelArtifact, ExportFolder]:
    """The model an export ranks with (*version*, or the live one) and its folder, ``s3://bucket/prefix/<version>/``.

    Raises
    ------
    ModelUnavailable
        When *version* is None and no model is published yet.
    ArtifactError
        When the version cannot be loaded.
    """
    version = version or models.live_version()
    if version is None:
        raise ModelUnavailable("no model is published yet")
    return models.load(version), ExportFolder(s3_client, bucket, f"{prefix.strip('/')}/{version}")


@dataclass
class PartsWritten:
    """The parts an export wrote, the users in them and those left out as erased."""

    parts: list[str] = field(default_factory=list)
    users: int = 0
    erased_users: int = 0
    bytes_written: int = 0


def write_parts(folder: ExportFolder, chunks: Iterable[tuple[int, int, bytes]], extension: str, content_type: str,
                progress: Callable[[int], None] = lambda users: None) -> PartsWritten:
    """Write each chunk's body as the next part; *chunks* yields (users written, users left out as erased, body).

    A chunk whose users were all left out writes no part. *progress* gets
    each chunk's users, written or left out.
    """
    written = PartsWritten()
    for count, erased, body in chunks:
        written.erased_users += erased
        if count:
            written.parts.append(folder.put(f"part-{len(written.parts):05d}.{extension}", body, content_type))
            written.users += count
            written.bytes_written += len(body)
        progress(count + erased)
    return written
