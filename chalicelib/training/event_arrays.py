"""Events as compact coded arrays: what training reads the log into.

Events are kept as integer codes (user, item, event type) plus a millisecond
time: about 18 bytes an event, so 10 million events fit in a few hundred MB.
Only the distinct ids are Python strings. Readers of the log (scan, export)
feed an :class:`EventCollector` page by page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import numpy as np

from chalicelib.eventlog.item import ERASED_KEY, parse_stored_time, raw_key, time_key_instants


@dataclass(frozen=True)
class EventArrays:
    """Events as parallel coded arrays.

    ``users``/``items``/``types`` index ``user_ids``/``item_ids``/``event_types``;
    ``times`` are the events' own UTC ``datetime64[ms]``; ``received``, when
    known, when the log received each (NaT where it did not say), which is
    what an erasure is judged by; ``values``, when known, each event's
    ``value`` (NaN where it has none).
    """

    users: np.ndarray
    items: np.ndarray
    types: np.ndarray
    times: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    event_types: np.ndarray
    received: np.ndarray | None = None
    values: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def from_strings(
        cls, user_ids: Sequence[str], item_ids: Sequence[str], event_types: Sequence[str], times: Any,
        values: Sequence[float | None] | None = None,
    ) -> "EventArrays":
        """Build from parallel sequences of plain values (small data, tests); None values: no value."""
        unique_users, users = np.unique(np.asarray(user_ids, dtype=np.str_), return_inverse=True)
        unique_items, items = np.unique(np.asarray(item_ids, dtype=np.str_), return_inverse=True)
        unique_types, types = np.unique(np.asarray(event_types, dtype=np.str_), return_inverse=True)
        return cls(
            users=users.astype(np.int32), items=items.astype(np.int32), types=types.astype(np.int16),
            times=np.asarray(times, dtype="datetime64[ms]"),
            user_ids=unique_users, item_ids=unique_items, event_types=unique_types,
            values=None if values is None else np.array([np.nan if v is None else v for v in values], np.float32),
        )


@dataclass(frozen=True)
class EventLogSnapshot:
    """Every event of the log, every erased user with their erasure time, and when the read began."""

    events: EventArrays
    erased: dict[str, np.datetime64]
    scanned_at: datetime | None = None


class EventCollector:
    """Accumulates pages of events into :class:`EventArrays` without a Python object per event."""

    def __init__(self) -> None:
        self._codes: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self.erased: dict[str, np.datetime64] = {}
        self.count = 0

    @staticmethod
    def _encode(codes: dict[str, int], values: list[str], dtype: type) -> np.ndarray:
        return np.fromiter((codes.setdefault(v, len(codes)) for v in values), dtype=dtype, count=len(values))

    def add(self, user_ids: list[str], item_ids: list[str], event_types: list[str], time_keys: list[str],
            received: list[str | None] | None = None, values: list[float | None] | None = None) -> None:
        """Add one page of events; *time_keys* are the items' time-index keys, *received* their stored
        receive times and *values* their values (None where unknown)."""
        user_codes, item_codes, type_codes = self._codes
        self._chunks.append((
            self._encode(user_codes, user_ids, np.int32),
            self._encode(item_codes, item_ids, np.int32),
            self._encode(type_codes, event_types, np.int16),
            time_key_instants(time_keys),
            stored_time_instants(received if received is not None else [None] * len(user_ids)),
            np.array([np.nan] * len(user_ids) if values is None else [np.nan if v is None else v for v in values],
                     dtype=np.float32),
        ))
        self.count += len(user_ids)

    def add_erasure(self, user_id: str, erased_at: datetime) -> None:
        """Record that *user_id* was erased at *erased_at* (keeps the latest)."""
        moment = np.datetime64(erased_at.astimezone(timezone.utc).replace(tzinfo=None), "ms")
        self.erased[user_id] = max(moment, self.erased.get(user_id, moment))

    def add_raw_items(self, items: Iterable[dict[str, Any]]) -> int:
        """Add DynamoDB-JSON items (``{"user_id": {"S": ...}, ...}``); erasure markers are set apart.

        Returns how many items were read.
        """
        users, item_ids, types, time_keys, received, values = [], [], [], [], [], []
        read = 0
        for item in items:
            read += 1
            user_id, key = raw_key(item)
            if key == ERASED_KEY:
                self.add_erasure(user_id, parse_stored_time(item["erased_at"]["S"]))
                continue
            users.append(user_id)
            item_ids.append(item["item_id"]["S"])
            types.append(item["event_type"]["S"])
            time_keys.append(item["time_key"]["S"])
            received.append(item.get("received_at", {}).get("S"))
            number = item.get("value", {}).get("N")
            values.append(None if number is None else float(number))
        if users:
            self.add(users, item_ids, types, time_keys, received, values)
        return read

    def finish(self, scanned_at: datetime | None) -> EventLogSnapshot:
        """The snapshot of everything added."""
        def ids(codes: dict[str, int]) -> np.ndarray:
            return np.array(list(codes), dtype=np.str_) if codes else np.array([], dtype=np.str_)

        def joined(column: int, dtype: Any) -> np.ndarray:
            parts = [chunk[column] for chunk in self._chunks]
            return np.concatenate(parts) if parts else np.array([], dtype=dtype)

        user_codes, item_codes, type_codes = self._codes
        events = EventArrays(
            users=joined(0, np.int32), items=joined(1, np.int32), types=joined(2, np.int16),
            times=joined(3, "datetime64[ms]"),
            user_ids=ids(user_codes), item_ids=ids(item_codes), event_types=ids(type_codes),
            received=joined(4, "datetime64[ms]"), values=joined(5, np.float32),
        )
        return EventLogSnapshot(events=events, erased=dict(self.erased), scanned_at=scanned_at)


def training_cutoff(snapshot: EventLogSnapshot) -> datetime | None:
    """Up to when a model trained on *snapshot* knows the log.

    Every event logged (received) before the read began is in the snapshot,
    so serving folds in only events logged after this time. A snapshot built
    without a read time uses the time of its latest event.
    """
    if snapshot.scanned_at is not None:
        return snapshot.scanned_at
    if len(snapshot.events) == 0:
        return None
    latest = snapshot.events.times.max().astype("datetime64[ms]").astype(datetime)
    return latest.replace(tzinfo=timezone.utc)


def stored_time_instants(values: list[str | None]) -> np.ndarray:
    """Stored time attributes (pynamodb's ``...+0000``, or any offset) as UTC ``datetime64[ms]``, NaT for None."""
    def utc_text(value: str | None) -> str:
        if value is None:
            return "NaT"
        if value.endswith("+0000"):
            return value[:-5]
        return parse_stored_time(value).astimezone(timezone.utc).replace(tzinfo=None).isoformat()

    return np.array([utc_text(value) for value in values], dtype="datetime64[ms]")
