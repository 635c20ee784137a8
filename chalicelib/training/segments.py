"""Audience segments: the users of a model grouped by taste, and what sets each group apart.

At retrain time the trained user factors are clustered by spherical k-means
(:func:`~chalicelib.training.approximate_index.kmeans` on unit-length rows):
users whose factors point the same way like the same things, whatever how
much they interact (a factor row's length grows with activity, its direction
is the taste). Each segment is then described by its most characteristic
items, those over-represented among its members relative to every user:

    lift(s, i) = (members of s who engaged with i / members of s)
                 / (users who engaged with i / users)

where "engaged" is a positive training interaction. Only items at least
``min_share`` of the segment engaged with (and at least ``MIN_MEMBERS``
members) count, so that one rare item two members liked does not describe a
segment of thousands. They are ranked by ``share × ln(lift)``, the item's term
in how far the segment's engagement is from everyone's (a Kullback-Leibler
divergence): an item most members engaged with and others less often comes
before an obscure one a few members shared, which lift alone would put first. The items are stored by id with their member counts and
lifts; titles and categories are the catalog's, read when a segment is shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.models.artifact import ModelArtifact, make_segments_entry
from chalicelib.serving.ranking import inverse_norms
from chalicelib.training.approximate_index import kmeans

#: k-means iterations over the sample (Lloyd's; converges well within this on user factors).
ITERATIONS = 25
#: An item describes a segment only if at least this share of its members engaged with it...
MIN_SHARE = 0.1
#: ... and at least this many of them.
MIN_MEMBERS = 2
#: Characteristic items stored per segment.
TOP_ITEMS = 20
#: Segments a retrain makes unless told otherwise (RetrainOptions.user_segments, --user-segments).
DEFAULT_SEGMENTS = 8
#: At most this many segments (a segment number is stored in 16 bits; more than this describes no one).
MAX_SEGMENTS = 1000


def check_segment_count(n_segments: int) -> int:
    """*n_segments* if it is 0 (no segments) to MAX_SEGMENTS, else InvalidTrainingOptions."""
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or not 0 <= n_segments <= MAX_SEGMENTS:
        raise InvalidTrainingOptions(f"user segments must be an integer from 0 (none) to {MAX_SEGMENTS}, "
                                     f"got {n_segments!r}")
    return n_segments


def cluster_users(user_factors: np.ndarray, n_segments: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's segment (int16, (n_users,)) and the segments' unit centroids (float32, (n_segments, factors)).

    Spherical k-means over the directions of *user_factors*, seeded. Fewer
    users than *n_segments* gives one segment per user.
    """
    n_segments = min(n_segments, user_factors.shape[0])
    directions = user_factors * inverse_norms(user_factors)[:, None]
    centroids, assignment = kmeans(directions, n_segments, ITERATIONS, np.random.default_rng(seed), spherical=True)
    return assignment.astype(np.int16), centroids


def characteristic_items(seen_indptr: np.ndarray, seen_indices: np.ndarray, seen_values: np.ndarray,
                         assignment: np.ndarray, n_segments: int, n_items: int, top: int = TOP_ITEMS,
                         min_share: float = MIN_SHARE) -> list[list[tuple[int, int, float]]]:
    """Per segment, its most characteristic item rows: ``(row, members engaged, lift)``, most characteristic first.

    ``lift`` is the share of the segment's members who engaged with the item
    over the share of all users who did (module docstring); an item needs at
    least ``max(MIN_MEMBERS, min_share × members)`` members and a lift above 1,
    and items are ranked by ``share × ln(lift)``. Ties go to more members, then
    to the lower row.
    """
    positive = seen_values > 0
    interaction_users = np.repeat(np.arange(seen_indptr.shape[0] - 1), np.diff(seen_indptr))[positive]
    items = seen_indices[positive].astype(np.int64)
    overall = np.bincount(items, minlength=n_items)
    sizes = np.bincount(assignment, minlength=n_segments)
    n_users = assignment.shape[0]
    interaction_segments = assignment[interaction_users]
    described = []
    for segment in range(n_segments):
        counts = np.bincount(items[interaction_segments == segment], minlength=n_items)
        needed = max(MIN_MEMBERS, min_share * sizes[segment])
        lift = np.zeros(n_items)
        np.divide(counts * n_users, overall * max(int(sizes[segment]), 1), out=lift, where=overall > 0)
        candidates = np.flatnonzero((counts >= needed) & (lift > 1.0))
        divergence = counts[candidates] / max(int(sizes[segment]), 1) * np.log(lift[candidates])
        order = np.lexsort((candidates, -counts[candidates], -divergence))[:top]
        described.append([(int(row), int(counts[row]), float(lift[row])) for row in candidates[order]])
    return described


def add_segments(artifact: ModelArtifact, n_segments: int, seed: int) -> ModelArtifact:
    """*artifact* with its users in *n_segments* segments (none when 0), described by their characteristic items."""
    if check_segment_count(n_segments) == 0 or artifact.n_users == 0:
        return replace(artifact, user_segments=None, segment_centroids=None, segments=None)
    assignment, centroids = cluster_users(artifact.user_factors, n_segments, seed)
    described = characteristic_items(artifact.seen_indptr, artifact.seen_indices, artifact.seen_values,
                                     assignment, centroids.shape[0], artifact.n_items)
    sizes = np.bincount(assignment, minlength=centroids.shape[0])
    entry: dict[str, Any] = make_segments_entry(
        sizes.tolist(),
        [[{"item_id": str(artifact.item_ids[row]), "users": users, "lift": round(lift, 4)}
          for row, users, lift in items] for items in described],
        method="spherical k-means of user factors", seed=seed, min_share=MIN_SHARE)
    return replace(artifact, user_segments=assignment, segment_centroids=centroids, segments=entry)
