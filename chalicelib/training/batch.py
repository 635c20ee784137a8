"""Recommendations computed ahead for many users: JSON lines in S3, chunk by chunk, in bounded memory.

For email campaigns and feeds: the top-N of every user a model knows (or of
a given list) ranked as ``GET /users/{id}/recommendations`` ranks a known
user on the model alone (trained factors, training items excluded, ties to
the lower row). Users the model does not know are counted and left out: they
would all get the same popular items.

Memory is bounded by the chunk, not by the number of users: one chunk's
scores (chunk users x items, float32) and its lines are all that is held
besides the model. Users erased since the model was trained are left out
(their erasure markers are read by key, a chunk at a time). Each chunk becomes
one S3 object, ``part-00000.jsonl``, ``part-00001.jsonl``..., and
``_manifest.json`` is written last (:mod:`chalicelib.exports`, shared with the
audience export).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import numpy as np
import scipy.sparse as sp

from chalicelib.exports import ErasureReader, ExportFolder, unerased, write_parts
from chalicelib.models.artifact import ModelArtifact
from chalicelib.serving.ids import IdIndex
from chalicelib.training.metrics import top_k

#: One chunk's scores stay under this many float32 entries (64 MB, about four times that while ranked):
#: 160 users of 100 000 items.
DEFAULT_SCORE_BUDGET = 16_000_000


@dataclass
class BatchSummary:
    """What a batch export wrote."""

    model_version: str | None
    n: int
    users: int = 0
    unknown_users: int = 0
    erased_users: int = 0
    parts: list[str] = field(default_factory=list)
    bytes_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values (the export's ``_manifest.json``)."""
        return {"model_version": self.model_version, "n": self.n, "users": self.users,
                "unknown_users": self.unknown_users, "erased_users": self.erased_users, "parts": self.parts, "bytes": self.bytes_written,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def chunk_size(n_items: int, score_budget: int = DEFAULT_SCORE_BUDGET) -> int:
    """How many users one chunk ranks so that its scores stay within *score_budget* entries."""
    return max(1, score_budget // max(n_items, 1))


def user_rows(artifact: ModelArtifact, user_ids: list[str] | None) -> tuple[np.ndarray, int]:
    """The model rows of *user_ids* (every user the model knows when None), and how many were unknown."""
    if user_ids is None:
        return np.arange(artifact.n_users), 0
    rows = IdIndex(artifact.user_ids, artifact.user_id_order).rows(user_ids)
    return rows[rows >= 0], int(np.count_nonzero(rows < 0))


def recommendation_lines(artifact: ModelArtifact, rows: np.ndarray, n: int, chunk: int,
                         erasures: ErasureReader | None = None) -> Iterator[tuple[int, int, bytes]]:
    """For each chunk of *rows*: its users written, its users left out as erased, and their JSON lines.

    A user erased after the model's training cutoff is left out (the model
    still holds their factors until the next retrain); one erased before it
    and active since is a new user of the model, and stays.
    """
    seen = sp.csr_matrix((np.ones(artifact.seen_indices.shape[0], dtype=np.float32), artifact.seen_indices,
                          artifact.seen_indptr), shape=(artifact.n_users, artifact.n_items))
    version = artifact.version
    for start in range(0, rows.shape[0], chunk):
        chunk_rows = rows[start:start + chunk]
        keep = unerased(artifact.user_ids[chunk_rows].tolist(), erasures, artifact.cutoff_time)
        erased = int(np.count_nonzero(~keep))
        chunk_rows = chunk_rows[keep]
        vectors = artifact.user_factors[chunk_rows]
        best = top_k(vectors, artifact.item_factors, seen[chunk_rows], n, batch=chunk)
        scores = np.einsum("uk,unk->un", vectors, artifact.item_factors[np.maximum(best, 0)])
        lines = []
        for row, items, item_scores in zip(chunk_rows.tolist(), best, scores, strict=True):
            kept = items >= 0
            lines.append(json.dumps({
                "user_id": str(artifact.user_ids[row]), "model_version": version,
                "items": [{"item_id": item_id, "score": round(score, 6)}
                          for item_id, score in zip(artifact.item_ids[items[kept]].tolist(),
                                                    item_scores[kept].tolist(), strict=True)],
            }, separators=(",", ":")))
        yield len(lines), erased, ("\n".join(lines) + "\n").encode() if lines else b""


def export_recommendations(artifact: ModelArtifact, output: ExportFolder, n: int, user_ids: list[str] | None = None,
                           chunk: int | None = None, erasures: ErasureReader | None = None,
                           progress: Callable[[int], None] = lambda users: None) -> BatchSummary:
    """Write the top *n* of each user (every known user when *user_ids* is None) to *output*.

    *erasures*: reads the users' erasure markers (None: no check, for a
    model read without its event log). Returns what was written;
    ``_manifest.json`` goes last.
    """
    rows, unknown = user_rows(artifact, user_ids)
    lines = recommendation_lines(artifact, rows, n, chunk or chunk_size(artifact.n_items), erasures)
    written = write_parts(output, lines, "jsonl", "application/x-ndjson", progress)
    summary = BatchSummary(model_version=artifact.version, n=n, users=written.users, unknown_users=unknown,
                           erased_users=written.erased_users, parts=written.parts,
                           bytes_written=written.bytes_written)
    output.put_manifest(summary.as_dict())
    return summary
