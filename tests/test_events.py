"""The event table on every DynamoDB emulator: creation is idempotent and items round-trip."""

from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.events import ensure_table, event_model
from local_aws.stack import provision


def test_provision_creates_the_table_once(dynamodb_settings):
    model = event_model(dynamodb_settings.events_table, dynamodb_settings.region, dynamodb_settings.dynamodb_endpoint_url)
    assert model.exists()
    assert ensure_table(model) is False
    provision(dynamodb_settings)  # a second run must not fail on existing bucket or table
    assert model.exists()


def test_a_users_events_come_back_in_time_order(dynamodb_settings):
    model = event_model(dynamodb_settings.events_table, dynamodb_settings.region, dynamodb_settings.dynamodb_endpoint_url)
    times = [datetime(2026, 1, day, tzinfo=timezone.utc) for day in (3, 1, 2)]
    for number, moment in enumerate(times):
        model(
            "alice", f"{moment.isoformat()}#e{number}", event_id=f"e{number}", item_id=f"item{number}",
            event_type="view", timestamp=moment,
        ).save()
    model("bob", "2026-01-01T00:00:00+00:00#b", event_id="b", item_id="x", event_type="click",
          timestamp=times[1]).save()

    events = list(model.query("alice"))

    assert [event.event_id for event in events] == ["e1", "e2", "e0"]
    assert [event.timestamp for event in events] == sorted(times)
    assert events[0].value is None
