"""Reading the DynamoDB event log into arrays for training."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from chalicelib.events import ERASED_KEY, EventRecord
from chalicelib.training.interactions import InteractionMatrix, build_interactions

_SCANNED_ATTRIBUTES = ["user_id", "record_key", "time_key", "item_id", "event_type", "erased_at"]


@dataclass(frozen=True)
class EventArrays:
    """Events as parallel arrays; ``times`` are UTC ``datetime64[ms]``."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    event_types: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])


@dataclass(frozen=True)
class EventLogSnapshot:
    """Every event of the log, every erased user with their erasure time, and when the scan began."""

    events: EventArrays
    erased: dict[str, np.datetime64]
    scanned_at: datetime | None = None


def _scan_pages(model: type[EventRecord]) -> Iterator[list[dict[str, Any]]]:
    # The raw table connection: no Model object per item, which matters at millions of events.
    table = model._get_connection()
    start_key = None
    while True:
        page = table.scan(attributes_to_get=_SCANNED_ATTRIBUTES, exclusive_start_key=start_key)
        yield page.get("Items", [])
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            return


def read_event_log(model: type[EventRecord], progress: Callable[[int], None] = lambda n: None) -> EventLogSnapshot:
    """Scan the whole table (every page) into arrays; erasure markers are collected apart."""
    scanned_at = datetime.now(timezone.utc)
    users: list[str] = []
    items: list[str] = []
    types: list[str] = []
    time_keys: list[str] = []
    erased: dict[str, np.datetime64] = {}
    for page in _scan_pages(model):
        for item in page:
            if item["record_key"]["S"] == ERASED_KEY:
                erased_at = datetime.fromisoformat(_utc_text(item["erased_at"]["S"]))
                erased[item["user_id"]["S"]] = np.datetime64(erased_at.astimezone(timezone.utc).replace(tzinfo=None), "ms")
                continue
            users.append(item["user_id"]["S"])
            items.append(item["item_id"]["S"])
            types.append(item["event_type"]["S"])
            time_keys.append(item["time_key"]["S"][:23])
        progress(len(page))
    events = EventArrays(
        user_ids=np.asarray(users, dtype=np.str_),
        item_ids=np.asarray(items, dtype=np.str_),
        event_types=np.asarray(types, dtype=np.str_),
        times=np.asarray(time_keys, dtype="datetime64[ms]"),
    )
    return EventLogSnapshot(events=events, erased=erased, scanned_at=scanned_at)


def _utc_text(value: str) -> str:
    # pynamodb stores "2026-01-01T00:00:00.000000+0000"; fromisoformat wants "+00:00".
    return value[:-2] + ":" + value[-2:] if value[-5] in "+-" else value


def interactions_from_snapshot(snapshot: EventLogSnapshot, weights: Mapping[str, float]) -> InteractionMatrix:
    """User × item matrix of summed event weights.

    Events of erased users up to their erasure time and events of types
    without a weight are left out; repeated events of one user and item add
    up (so a dislike after a view can make the sum negative).
    """
    events = snapshot.events
    keep = np.isin(events.event_types, list(weights))
    if snapshot.erased:
        names = np.array(sorted(snapshot.erased), dtype=np.str_)
        erased_at = np.array([snapshot.erased[name] for name in names], dtype="datetime64[ms]")
        position = np.clip(np.searchsorted(names, events.user_ids), 0, len(names) - 1)
        keep &= ~((names[position] == events.user_ids) & (events.times <= erased_at[position]))
    type_names = np.array(list(weights), dtype=np.str_)
    type_weights = np.array(list(weights.values()), dtype=np.float32)
    sorter = np.argsort(type_names)
    values = type_weights[sorter][np.searchsorted(type_names[sorter], events.event_types[keep])]
    return build_interactions(events.user_ids[keep], events.item_ids[keep], values)


def training_cutoff(snapshot: EventLogSnapshot) -> datetime | None:
    """Up to when the model trained on *snapshot* knows the log.

    Every event logged (received) before the scan began is in the snapshot,
    so serving folds in only events logged after this time. A snapshot built
    without a scan uses the time of its latest event.
    """
    if snapshot.scanned_at is not None:
        return snapshot.scanned_at
    if len(snapshot.events) == 0:
        return None
    latest = snapshot.events.times.max().astype("datetime64[ms]").astype(datetime)
    return latest.replace(tzinfo=timezone.utc)
