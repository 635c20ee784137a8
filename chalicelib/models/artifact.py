"""The model artifact: the one format training writes and serving reads.

A published version lives under ``{prefix}/{version}/`` in S3:

* ``model.npz`` -- plain numeric and fixed-width unicode arrays, read with
  ``allow_pickle=False``:

  ================  =========  ==========================================
  name              dtype      shape / meaning
  ================  =========  ==========================================
  item_factors      float32    (n_items, factors)
  user_factors      float32    (n_users, factors)
  user_ids          ASCII or   (n_users,) external user ids: bytes (one
                    unicode    per character) when every id is ASCII,
                               else unicode (four bytes a character)
  item_ids          the same   (n_items,) external item ids
  item_popularity   float32    (n_items,) training interactions per item
  seen_indptr       int64      (n_users + 1,) CSR row pointer of the
                               user-item interactions seen in training
  seen_indices      int32      (n_interactions,) CSR column indices
  seen_values       float32    (n_interactions,) the interaction strengths
                               training used (for real-time fold-in)
  item_id_order     int32      (n_items,) the permutation that sorts
                               item_ids (serving finds ids by binary search)
  user_id_order     int32      (n_users,) the same for user_ids
  ivf_centroids     float32    optional, (n_lists, factors): k-means
                               centroids of the item factors
  ivf_offsets       int64      optional, (n_lists + 1,): list l holds item
                               rows ivf_offsets[l]:ivf_offsets[l + 1]
  ivf_similar_*     (three)    optional: the same for item directions
                               (cosine): ``centroids`` float32 unit rows,
                               ``offsets`` int64, and ``rows`` int32
                               (n_items,), the item rows list by list
  item_gram         float64    (factors, factors): YᵀY of item_factors,
                               which real-time fold-in needs
  user_segments     int16      optional, (n_users,): each user's segment
  segment_centroids float32    optional, (n_segments, factors): the unit
                               centroids of the segments (both or none)
  ================  =========  ==========================================

  The archive is stored uncompressed, each array's data aligned to 64 bytes
  in the file, so that a reader can use the arrays where the downloaded bytes
  lie instead of copying them (:func:`deserialize` does). Files written before
  the id orders or the Gram matrix existed still load: those are then
  computed when the model is read. The ``ivf_`` arrays come in two groups, each all or none (the second only with the first) (an
  approximate top-N index, :mod:`chalicelib.serving.approximate`), with the
  manifest's ``approximate_index`` giving their ``probes`` and ``similar_probes``.

* ``manifest.json`` -- version, creation time, algorithm and
  hyperparameters, counts, the sha256 of ``model.npz``, metrics and the
  training cutoff. ``hyperparameters`` must hold ``regularization`` (>= 0)
  and ``alpha`` (> 0): serving folds new interactions in with the same
  values training used, so a model without them is refused. With an
  approximate index, ``approximate_index`` holds its ``lists``, ``probes``
  and the recall it was calibrated to. With segments, ``segments`` describes
  them (:func:`make_segments_entry`): how they were made, and per segment its
  number of users and its most characteristic items (id, members who engaged,
  lift).

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
import struct
import zipfile
from dataclasses import dataclass, replace
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
#: Arrays a model may lack: the id orders (computed on load for older files) and the approximate index.
_OPTIONAL_ARRAY_SPEC: dict[str, tuple[np.dtype | str, int]] = {
    "item_id_order": (np.dtype(np.int32), 1),
    "user_id_order": (np.dtype(np.int32), 1),
    "ivf_centroids": (np.dtype(np.float32), 2),
    "ivf_offsets": (np.dtype(np.int64), 1),
    "ivf_similar_centroids": (np.dtype(np.float32), 2),
    "ivf_similar_offsets": (np.dtype(np.int64), 1),
    "ivf_similar_rows": (np.dtype(np.int32), 1),
    "item_gram": (np.dtype(np.float64), 2),
    "user_segments": (np.dtype(np.int16), 1),
    "segment_centroids": (np.dtype(np.float32), 2),
}
_IVF_ARRAYS = ("ivf_centroids", "ivf_offsets", "ivf_similar_centroids", "ivf_similar_offsets", "ivf_similar_rows")
_IVF_GROUPS = (_IVF_ARRAYS[:2], _IVF_ARRAYS[2:])
_SEGMENT_ARRAYS = ("user_segments", "segment_centroids")


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
    #: The permutations that sort item_ids and user_ids (set by make_artifact and deserialize).
    item_id_order: np.ndarray | None = None
    user_id_order: np.ndarray | None = None
    #: An approximate top-N index over the item rows (all or none), and its manifest entry.
    ivf_centroids: np.ndarray | None = None
    ivf_offsets: np.ndarray | None = None
    ivf_similar_centroids: np.ndarray | None = None
    ivf_similar_offsets: np.ndarray | None = None
    ivf_similar_rows: np.ndarray | None = None
    approximate_index: dict[str, Any] | None = None
    #: YᵀY of item_factors as :func:`serialize` stored it (None in memory: serving computes it). Item
    #: permutations leave it unchanged; serialize always recomputes it from the factors it writes.
    item_gram: np.ndarray | None = None
    #: Audience segments (all or none): each user's segment, the segments' centroids, and the manifest entry.
    user_segments: np.ndarray | None = None
    segment_centroids: np.ndarray | None = None
    segments: dict[str, Any] | None = None

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
    def cutoff_time(self) -> datetime | None:
        """``training_cutoff`` as an aware time (UTC when it names no zone); None without one.

        What a model knows of a user ends there: one erased at or after it is
        still in the model's factors until the next retrain.
        """
        if not self.training_cutoff:
            return None
        moment = datetime.fromisoformat(self.training_cutoff)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    @property
    def regularization(self) -> float:
        """The λ training used, which real-time fold-in must use too."""
        return float(self.hyperparameters["regularization"])

    @property
    def alpha(self) -> float:
        """The confidence scaling training used, which real-time fold-in must use too."""
        return float(self.hyperparameters["alpha"])

    @property
    def fold_in_conventions(self) -> dict[str, Any]:
        """How training turned values into confidences and scaled λ (keyword arguments of ``fold_in``).

        implicit's ALS (the default, also for older files): confidence ``alpha * value`` and a fixed λ.
        Spark MLlib's ALS: confidence ``1 + alpha * value`` and λ times the user's positive interactions.
        Either may have weighed each user's row by their activity (``activity_exponent`` > 0).
        """
        conventions = {"confidence_offset": float(self.hyperparameters.get("confidence_offset", 0.0)),
                       "scale_regularization": self.hyperparameters.get("regularization_scaling", "none") == "interactions"}
        exponent = float(self.hyperparameters.get("activity_exponent", 0.0))
        if exponent:  # users weighed by their activity (chalicelib.serving.ranking.activity_weight)
            conventions.update(activity_exponent=exponent,
                               activity_reference=float(self.hyperparameters["activity_reference"]))
        return conventions

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored in ``model.npz``, by name."""
        return {name: getattr(self, name) for name in (*_ARRAY_SPEC, *_OPTIONAL_ARRAY_SPEC)
                if getattr(self, name) is not None}


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
    user_ids = np.asarray([str(u) for u in user_ids], dtype=np.str_)
    item_ids = np.asarray([str(i) for i in item_ids], dtype=np.str_)
    artifact = ModelArtifact(
        item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
        user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
        user_ids=user_ids,
        item_ids=item_ids,
        item_id_order=sorting_order(item_ids),
        user_id_order=sorting_order(user_ids),
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


def sorting_order(ids: np.ndarray) -> np.ndarray:
    """The permutation that sorts *ids*, as stored in ``item_id_order`` / ``user_id_order``."""
    return np.argsort(ids, kind="stable").astype(np.int32)


def permute_items(artifact: ModelArtifact, order: np.ndarray) -> ModelArtifact:
    """*artifact* with its item rows in *order* (new row r is old row ``order[r]``).

    Every item-indexed array follows, and the seen interactions are renumbered;
    the answers do not change except in how exact ties are broken. The
    approximate index is dropped (it describes the old rows).
    """
    order = np.asarray(order, dtype=np.int64)
    new_row_of = np.empty_like(order)
    new_row_of[order] = np.arange(order.shape[0])
    item_ids = artifact.item_ids[order]
    return replace(
        artifact,
        item_factors=np.ascontiguousarray(artifact.item_factors[order]),
        item_ids=item_ids,
        item_popularity=artifact.item_popularity[order],
        seen_indices=new_row_of[artifact.seen_indices].astype(np.int32),
        item_id_order=sorting_order(item_ids),
        **{name: None for name in _IVF_ARRAYS}, approximate_index=None,
    )


#: How λ grows with a user's interactions: not at all (implicit), or times their count of positive ones (Spark).
REGULARIZATION_SCALINGS = ("none", "interactions")


def check_fold_in_hyperparameters(hyperparameters: Any) -> None:
    """Refuse hyperparameters without a finite ``regularization`` >= 0 and ``alpha`` > 0 (fold-in needs both).

    The optional conventions must be ones fold-in knows: ``confidence_offset`` 0 or 1,
    ``regularization_scaling`` ``none`` or ``interactions``, and ``activity_exponent`` from 0 to 1
    (above 0, with training's ``activity_reference``).
    """
    if not isinstance(hyperparameters, dict):
        raise ArtifactError(f"hyperparameters must be a JSON object, found {type(hyperparameters).__name__}")
    for name, positive in (("regularization", False), ("alpha", True)):
        value = hyperparameters.get(name)
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not number or value < 0 or (positive and value == 0):
            raise ArtifactError(f"hyperparameters must give {name} as a finite number "
                                f"{'> 0' if positive else '>= 0'} (fold-in needs it), found {value!r}")
    offset = hyperparameters.get("confidence_offset", 0)
    if isinstance(offset, bool) or offset not in (0, 1):
        raise ArtifactError(f"hyperparameters' confidence_offset must be 0 or 1, found {offset!r}")
    scaling = hyperparameters.get("regularization_scaling", "none")
    if scaling not in REGULARIZATION_SCALINGS:
        raise ArtifactError(f"hyperparameters' regularization_scaling must be one of {', '.join(REGULARIZATION_SCALINGS)}"
                            f", found {scaling!r}")
    exponent = hyperparameters.get("activity_exponent", 0.0)
    if not _finite_number(exponent) or not 0 <= exponent <= 1:
        raise ArtifactError(f"hyperparameters' activity_exponent must be a number from 0 to 1, found {exponent!r}")
    reference = hyperparameters.get("activity_reference")
    if exponent and not (_finite_number(reference) and reference > 0):
        raise ArtifactError("hyperparameters with an activity_exponent must give activity_reference, training's mean "
                            f"count of positive items a user, as a finite number > 0 (fold-in needs it), found {reference!r}")


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_arrays(arrays: dict[str, np.ndarray], expected_factors: int | None = None) -> None:
    for name, (expected, ndim) in {**_ARRAY_SPEC, **_OPTIONAL_ARRAY_SPEC}.items():
        if name not in arrays:
            if name in _OPTIONAL_ARRAY_SPEC:
                continue
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
    for name, order_name in (("user_ids", "user_id_order"), ("item_ids", "item_id_order")):
        _check_id_order(name, arrays[name], order_name, arrays.get(order_name))
    _check_approximate_index(arrays, n_items, n_factors)
    _check_segment_arrays(arrays, n_users, n_factors)
    gram = arrays.get("item_gram")
    if gram is not None:
        if gram.shape != (n_factors, n_factors):
            raise ArtifactError(f"item_gram must be ({n_factors}, {n_factors}), found shape {gram.shape}")
        if not np.isfinite(gram).all():
            raise ArtifactError("item_gram contains NaN or infinite values")

    indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ArtifactError(
            "seen_indptr must start at 0, never decrease and end at len(seen_indices)"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise ArtifactError(f"seen_indices must lie in [0, {n_items})")


def _check_id_order(name: str, ids: np.ndarray, order_name: str, order: np.ndarray | None) -> None:
    """*order* must sort *ids* strictly: a permutation, and proof that no id repeats."""
    if order is None:
        order = sorting_order(ids)
    if order.shape[0] != ids.shape[0]:
        raise ArtifactError(f"{order_name} has length {order.shape[0]}, expected {ids.shape[0]} (len({name}))")
    elif order.size and (order.min() < 0 or order.max() >= ids.shape[0]):
        raise ArtifactError(f"{order_name} must lie in [0, {ids.shape[0]})")
    ordered = ids[order]
    if np.any(ordered[1:] <= ordered[:-1]):
        raise ArtifactError(f"{name} contains duplicate ids, or {order_name} does not sort them")


def _check_approximate_index(arrays: dict[str, np.ndarray], n_items: int, n_factors: int) -> None:
    groups = []
    for group in _IVF_GROUPS:
        present = [name for name in group if name in arrays]
        if present and len(present) != len(group):
            missing = sorted(set(group).difference(present))
            raise ArtifactError(f"{MODEL_FILE} has {present[0]} without {', '.join(missing)}")
        groups.append(bool(present))
    if groups[1] and not groups[0]:
        raise ArtifactError(f"{MODEL_FILE} has ivf_similar_* arrays without ivf_centroids")
    for prefix, present in zip(("ivf_", "ivf_similar_"), groups, strict=True):
        if not present:
            continue
        centroids, offsets = arrays[prefix + "centroids"], arrays[prefix + "offsets"]
        if centroids.shape[0] == 0 or centroids.shape[1] != n_factors:
            raise ArtifactError(f"{prefix}centroids must be (lists >= 1, {n_factors}), found shape {centroids.shape}")
        if not np.isfinite(centroids).all():
            raise ArtifactError(f"{prefix}centroids contains NaN or infinite values")
        _expect_length(arrays, prefix + "offsets", centroids.shape[0] + 1, f"{prefix}centroids rows + 1")
        if offsets[0] != 0 or offsets[-1] != n_items or np.any(np.diff(offsets) < 0):
            raise ArtifactError(f"{prefix}offsets must start at 0, never decrease and end at the number of items")
    if groups[1]:
        rows = arrays["ivf_similar_rows"]
        _expect_length(arrays, "ivf_similar_rows", n_items, "item_factors rows")
        if rows.size and (rows.min() < 0 or rows.max() >= n_items):
            raise ArtifactError(f"ivf_similar_rows must lie in [0, {n_items})")
        if rows.size and np.bincount(rows, minlength=n_items).max() > 1:
            raise ArtifactError("ivf_similar_rows must list every item row once")


def check_approximate_entry(entry: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The manifest's ``approximate_index``, checked against the lists stored (None: no index)."""
    if "ivf_centroids" not in arrays:
        if entry is not None:
            raise ArtifactError("manifest describes an approximate_index but model.npz has none")
        return None
    if not isinstance(entry, dict):
        raise ArtifactError("model.npz holds an approximate index but the manifest has no approximate_index")
    for name, centroids in (("probes", "ivf_centroids"), ("similar_probes", "ivf_similar_centroids")):
        if centroids not in arrays:
            if entry.get(name) is not None:
                raise ArtifactError(f"approximate_index gives {name} but model.npz has no {centroids}")
            continue
        probes, n_lists = entry.get(name), arrays[centroids].shape[0]
        if isinstance(probes, bool) or not isinstance(probes, int) or not 1 <= probes <= n_lists:
            raise ArtifactError(f"approximate_index.{name} must be an integer in [1, {n_lists}], found {probes!r}")
    return dict(entry)


def _check_segment_arrays(arrays: dict[str, np.ndarray], n_users: int, n_factors: int) -> None:
    present = [name for name in _SEGMENT_ARRAYS if name in arrays]
    if not present:
        return
    if len(present) != len(_SEGMENT_ARRAYS):
        raise ArtifactError(f"{MODEL_FILE} has {present[0]} without {set(_SEGMENT_ARRAYS).difference(present).pop()}")
    centroids, assignment = arrays["segment_centroids"], arrays["user_segments"]
    if centroids.shape[0] == 0 or centroids.shape[1] != n_factors:
        raise ArtifactError(f"segment_centroids must be (segments >= 1, {n_factors}), found shape {centroids.shape}")
    _expect_length(arrays, "user_segments", n_users, "user_factors rows")
    if assignment.size and (assignment.min() < 0 or assignment.max() >= centroids.shape[0]):
        raise ArtifactError(f"user_segments must lie in [0, {centroids.shape[0]})")


def make_segments_entry(sizes: list[int], items: list[list[dict[str, Any]]], **how: Any) -> dict[str, Any]:
    """The manifest's ``segments``: *how* they were made (method, seed...), and per segment its number of
    users and its characteristic items (``{"item_id", "users", "lift"}``, most characteristic first)."""
    return {**how, "segments": [{"segment": segment, "users": int(size), "items": list(described)}
                                for segment, (size, described) in enumerate(zip(sizes, items, strict=True))]}


def check_segments_entry(entry: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The manifest's ``segments``, checked against the segment arrays stored (None: no segments)."""
    if "user_segments" not in arrays:
        if entry is not None:
            raise ArtifactError("manifest describes segments but model.npz has no user_segments")
        return None
    segments = entry.get("segments") if isinstance(entry, dict) else None
    n_segments = arrays["segment_centroids"].shape[0]
    if not isinstance(segments, list) or len(segments) != n_segments:
        raise ArtifactError(f"manifest's segments must list the {n_segments} segments model.npz holds")
    sizes = np.bincount(arrays["user_segments"], minlength=n_segments).tolist()
    for segment, (described, size) in enumerate(zip(segments, sizes, strict=True)):
        if not isinstance(described, dict) or described.get("segment") != segment or described.get("users") != size:
            raise ArtifactError(f"manifest's segment {segment} must give segment {segment} and users {size}")
        items = described.get("items")
        if not isinstance(items, list) or not all(
                isinstance(item, dict) and isinstance(item.get("item_id"), str) for item in items):
            raise ArtifactError(f"manifest's segment {segment} must list its items as objects with an item_id")
    return dict(entry)


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
    approximate = check_approximate_entry(artifact.approximate_index, artifact.arrays())
    segments = check_segments_entry(artifact.segments, artifact.arrays())
    payload = _write_npz({**artifact.arrays(), "item_gram": factor_gram(artifact.item_factors),
                          **{name: _compact_ids(getattr(artifact, name)) for name in ("item_ids", "user_ids")}})
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
        "approximate_index": approximate,
        "segments": segments,
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
    for name in ("item_ids", "user_ids"):
        if name in arrays:
            arrays[name] = _expand_ids(name, arrays[name])
    for ids_name, order_name in (("item_ids", "item_id_order"), ("user_ids", "user_id_order")):
        if order_name not in arrays and ids_name in arrays:  # written before the orders were stored
            arrays[order_name] = sorting_order(arrays[ids_name])
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
    approximate = check_approximate_entry(manifest.get("approximate_index"), arrays)
    segments = check_segments_entry(manifest.get("segments"), arrays)
    return ModelArtifact(
        **{name: arrays[name] for name in _ARRAY_SPEC},
        item_id_order=arrays["item_id_order"],
        user_id_order=arrays["user_id_order"],
        **{name: arrays.get(name) for name in _IVF_ARRAYS},
        approximate_index=approximate,
        item_gram=arrays.get("item_gram"),
        **{name: arrays.get(name) for name in _SEGMENT_ARRAYS},
        segments=segments,
        algorithm=manifest["algorithm"],
        hyperparameters=dict(manifest["hyperparameters"]),
        training_cutoff=manifest.get("training_cutoff"),
        metrics=manifest.get("metrics"),
        version=manifest["version"],
        created_at=manifest.get("created_at"),
        forced=bool(manifest.get("forced", False)),
    )


def _compact_ids(ids: np.ndarray) -> np.ndarray:
    """*ids* as one byte a character when they are all ASCII (a quarter of the unicode size), else as they are."""
    try:
        return ids.astype(np.bytes_)
    except UnicodeEncodeError:
        return ids


def _expand_ids(name: str, ids: np.ndarray) -> np.ndarray:
    """Stored ids back to unicode, the form serving and training use (a cast in C, no Python loop)."""
    if ids.dtype.kind != "S":
        return ids
    try:
        return ids.astype(np.str_)
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{name} holds bytes that are not ASCII") from exc


def factor_gram(item_factors: np.ndarray) -> np.ndarray:
    """YᵀY of *item_factors*, in float64 (computed in the factors' own float32, as implicit computes it)."""
    return (item_factors.T @ item_factors).astype(np.float64)


#: Where each array's data starts in ``model.npz``: numpy pads its .npy headers to this multiple,
#: and the writer pads each member's local header to it, so the data lie aligned in the file.
_ALIGNMENT = 64
#: A zip "extra field" tag for padding (the one Android's zipalign uses); readers skip unknown tags.
_PADDING_TAG = 0xD935
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name's and the extra field's lengths


def _write_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """*arrays* as an uncompressed npz archive whose array data start at multiples of 64 bytes.

    np.savez writes the same archive without the padding; np.load reads both.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            data = member.getbuffer()
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            # zipfile appends a 20-byte zip64 record to the extra field of members it deems large.
            zip64 = 20 if len(data) * 1.05 > zipfile.ZIP64_LIMIT else 0
            start = buffer.tell() + _LOCAL_HEADER.size + len(info.filename.encode()) + zip64
            padding = 6 + (-(start + 6)) % _ALIGNMENT  # a tag, a length and the alignment, then zeros
            info.extra = struct.pack("<HHH", _PADDING_TAG, padding - 4, _ALIGNMENT) + bytes(padding - 6)
            archive.writestr(info, data)
    return buffer.getvalue()


def _read_npz(payload: bytes) -> dict[str, np.ndarray]:
    """Every array of an npz archive: read-only views of *payload* where the data lie aligned, copies elsewhere.

    The caller has checked the sha256 of the whole payload, which is why the
    members' CRC32 are not checked again.
    """
    # np.load guesses the format from the bytes and falls back to unpickling
    # (refused here): insist on a zip archive first so the error names the real problem.
    if not payload.startswith(b"PK\x03\x04"):
        raise ArtifactError(f"{MODEL_FILE} is not a readable npz file (not a zip archive)")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return {info.filename.removesuffix(".npy"): _read_member(payload, archive, info)
                    for info in archive.infolist()}
    except (OSError, EOFError, zipfile.BadZipFile, struct.error) as exc:
        raise ArtifactError(f"{MODEL_FILE} is not a readable npz file: {exc}") from exc


def _read_member(payload: bytes, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    if info.compress_type != zipfile.ZIP_STORED:  # not what serialize writes: numpy's own reader
        with archive.open(info) as member:
            return _checked_read_array(member)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(payload, info.header_offset)
    if signature != b"PK\x03\x04":
        raise ArtifactError(f"{MODEL_FILE}: no local header for {info.filename}")
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    header = io.BytesIO(payload[start:start + min(info.file_size, 1 << 16)])
    version = np.lib.format.read_magic(header)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(header)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(header)
    else:
        with archive.open(info) as member:
            return _checked_read_array(member)
    if dtype.hasobject:
        raise ArtifactError(f"{MODEL_FILE} holds an object array ({info.filename}), which only pickle could read")
    count = math.prod(shape)
    offset = start + header.tell()
    if info.file_size - header.tell() != count * dtype.itemsize or offset + count * dtype.itemsize > len(payload):
        raise ArtifactError(f"{MODEL_FILE}: {info.filename} does not hold {shape} {dtype} values")
    array = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
    # Misaligned data (an archive written by np.savez) would slow every product down: copy those.
    return array if array.flags.aligned else array.copy()


def _checked_read_array(member: Any) -> np.ndarray:
    try:
        return np.lib.format.read_array(member, allow_pickle=False)
    except ValueError as exc:
        # numpy refuses object arrays unless unpickling is allowed: say so plainly.
        raise ArtifactError(f"{MODEL_FILE} holds object arrays, which would need unpickling: {exc}") from exc
