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
  training cutoff. ``hyperparameters`` must hold ``regularization`` (>= 0)
  and ``alpha`` (> 0): serving folds new interactions in with the same
  values training used, so a model without them is refused.

``{prefix}/latest.json`` names the live version. Publishers write the version
first and move the pointer last, so a reader never sees a half-written model.
Reading lives in :mod:`chalicelib.models.store`, publishing and managing
versions in :mod:`chalicelib.models.registry`.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from chalicelib.errors import ArtifactError

FORMAT_VERSION = 1
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "latest.json"

#: One safe S3 path segment: letters, digits and "._-", no leading dot or slash.
_SEGMENT_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")

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

    @property
    def regularization(self) -> float:
        """The λ training used, which real-time fold-in must use too."""
        return float(self.hyperparameters["regularization"])

    @property
    def alpha(self) -> float:
        """The confidence scaling training used, which real-time fold-in must use too."""
        return float(self.hyperparameters["alpha"])

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
        When shapes disagree, indices fall outside the item range, or the
        hyperparameters lack ``regularization`` or ``alpha``.
    """
    check_fold_in_hyperparameters(hyperparameters)
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


def check_fold_in_hyperparameters(hyperparameters: Any) -> None:
    """Refuse hyperparameters without a finite ``regularization`` >= 0 and ``alpha`` > 0 (fold-in needs both)."""
    if not isinstance(hyperparameters, dict):
        raise ArtifactError(f"hyperparameters must be a JSON object, found {type(hyperparameters).__name__}")
    for name, positive in (("regularization", False), ("alpha", True)):
        value = hyperparameters.get(name)
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not number or value < 0 or (positive and value == 0):
            raise ArtifactError(f"hyperparameters must give {name} as a finite number "
                                f"{'> 0' if positive else '>= 0'} (fold-in needs it), found {value!r}")


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


def is_safe_segment(name: object) -> bool:
    """Whether *name* is one safe S3 path segment, as version ids and files beside a version must be."""
    return isinstance(name, str) and bool(_SEGMENT_PATTERN.match(name))


def check_version_id(version: str) -> str:
    """Return *version* if it is a safe S3 path segment, else raise ArtifactError."""
    if not is_safe_segment(version):
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
    check_fold_in_hyperparameters(manifest["hyperparameters"])
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
