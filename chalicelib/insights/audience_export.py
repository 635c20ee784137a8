"""A full audience as CSV in S3, for an ad platform's custom-audience upload, in bounded memory.

Every user the model knows is scored for the target as the audience routes
score them (:mod:`chalicelib.insights.audiences`), engaged users left out
unless asked for, and put in order, best first (ties to the lower row). An
optional cut keeps the users scoring at least a threshold, or the best share
of them. The ordered users are then written a chunk at a time: the chunk's
erasure markers are read, users erased since the model was trained are left
out, and the rest becomes one CSV part (header ``user_id,score``);
``_manifest.json`` goes last (:mod:`chalicelib.exports`).

Memory, besides the model: the scores (4 bytes a user), the eligible users in
order (8 bytes a user) and one chunk's text, whatever the number of users.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import numpy as np

from chalicelib.exports import ErasureReader, ExportFolder, unerased, write_parts
from chalicelib.insights.audiences import AudienceTarget, audience_scores
from chalicelib.models.artifact import ModelArtifact

#: Users a chunk (one CSV part of about 2.5 MB, a thousand reads of erasure markers).
DEFAULT_CHUNK_USERS = 100_000
CSV_HEADER = ("user_id", "score")


@dataclass
class AudienceSummary:
    """What an audience export wrote."""

    model_version: str | None
    #: What the audience is for: ``{"item_id": …}`` or ``{"category": …}``.
    target: dict[str, str]
    include_engaged: bool
    threshold: float | None = None
    top_share: float | None = None
    engaged_users: int = 0
    users: int = 0
    erased_users: int = 0
    parts: list[str] = field(default_factory=list)
    bytes_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values (the export's ``_manifest.json``)."""
        return {"model_version": self.model_version, **self.target, "include_engaged": self.include_engaged,
                "threshold": self.threshold, "top_share": self.top_share, "engaged_users": self.engaged_users,
                "users": self.users, "erased_users": self.erased_users, "parts": self.parts,
                "bytes": self.bytes_written, "format": "csv", "columns": list(CSV_HEADER),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def audience_order(scores: np.ndarray, threshold: float | None = None, top_share: float | None = None) -> np.ndarray:
    """The rows of the users with a score (not -inf), best first, ties to the lower row, cut as asked.

    *threshold*: only scores at least this. *top_share*: only the best
    ``ceil(top_share × eligible)`` of them (0 < top_share <= 1).
    """
    eligible = np.flatnonzero(scores > -np.inf)
    order = eligible[np.argsort(-scores[eligible], kind="stable")]
    if threshold is not None:
        order = order[:int(np.count_nonzero(scores[order] >= threshold))]  # scores fall along the order
    if top_share is not None:
        order = order[:math.ceil(top_share * order.shape[0])]
    return order


def csv_part(user_ids: list[str], scores: list[float]) -> bytes:
    """One CSV part: the header, then a line per user (scores to 6 decimals, as the API gives them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(zip(user_ids, [round(score, 6) for score in scores], strict=True))
    return buffer.getvalue().encode()


def _chunks(artifact: ModelArtifact, order: np.ndarray, scores: np.ndarray, chunk: int,
            erasures: ErasureReader | None) -> Iterator[tuple[int, int, bytes]]:
    cutoff = artifact.cutoff_time
    for start in range(0, order.shape[0], chunk):
        rows = order[start:start + chunk]
        keep = unerased(artifact.user_ids[rows].tolist(), erasures, cutoff)
        rows = rows[keep]
        body = csv_part(artifact.user_ids[rows].tolist(), scores[rows].tolist()) if rows.size else b""
        yield int(rows.shape[0]), int(np.count_nonzero(~keep)), body


def export_audience(artifact: ModelArtifact, target: AudienceTarget, described: dict[str, str],
                    folder: ExportFolder, *, include_engaged: bool = False, threshold: float | None = None,
                    top_share: float | None = None, chunk: int = DEFAULT_CHUNK_USERS,
                    erasures: ErasureReader | None = None,
                    progress: Callable[[int], None] = lambda users: None) -> AudienceSummary:
    """Write the audience of *target* to *folder* as CSV parts, then ``_manifest.json``.

    Parameters
    ----------
    artifact: the model whose users are scored.
    target: the item or category (:func:`item_target`, :func:`category_target`).
    described: what the manifest says the audience is for (``{"item_id": "50"}``).
    include_engaged: keep users who already interacted with the target.
    threshold, top_share: the cut (see :func:`audience_order`).
    chunk: users a part.
    erasures: reads the users' erasure markers (None: no check, for a model
        read without its event log; erased users may then appear).
    progress: called with each chunk's users.
    """
    scores, engaged = audience_scores(artifact, target, include_engaged)
    order = audience_order(scores, threshold, top_share)
    written = write_parts(folder, _chunks(artifact, order, scores, chunk, erasures), "csv", "text/csv", progress)
    summary = AudienceSummary(model_version=artifact.version, target=described, include_engaged=include_engaged,
                              threshold=threshold, top_share=top_share, engaged_users=engaged,
                              users=written.users, erased_users=written.erased_users, parts=written.parts,
                              bytes_written=written.bytes_written)
    folder.put_manifest(summary.as_dict())
    return summary
