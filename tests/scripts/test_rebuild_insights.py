"""scripts/rebuild_insights.py end to end: counters rebuilt from the event log of a stage's tables."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from chalicelib.eventlog.item import Event
from chalicelib.insights import sketch
from chalicelib.insights.counters import ITEM, hour_bucket
from chalicelib.resources import Resources
from tests.conftest import with_counters
from tests.support import load_script

rebuild_cli = load_script("rebuild_insights")


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off)."""
    return with_counters(settings)


def test_rebuilds_drifted_counters_from_the_event_log(settings, monkeypatch, capsys):
    monkeypatch.setattr(rebuild_cli, "settings_for_stage", lambda stage: settings)
    resources = Resources(settings)
    now = datetime.now(timezone.utc)
    resources.event_log.write([Event("u1", "i1", "view", uuid.uuid4().hex, now),
                               Event("u2", "i1", "click", uuid.uuid4().hex, now)])
    resources.insights.counters.record([Event("u9", "i1", "view", "never-stored", now)])  # drift

    assert rebuild_cli.main(["--stage", "test"]) == 0

    assert capsys.readouterr().out.startswith("rebuilt 2 counter items and deleted 0 stale ones")
    [counted] = [row for row in resources.insights.counter_reader.read([hour_bucket(now)], ITEM)[hour_bucket(now)]
                 if row.dimension == ITEM + "i1"]
    assert (counted.count("view"), counted.count("click"), sketch.estimate(counted.registers)) == (1, 1, 2)


def test_a_stage_without_its_settings_is_an_error_not_a_traceback(monkeypatch, capsys):
    for name in ("MODEL_BUCKET", "EVENTS_TABLE"):
        monkeypatch.delenv(name, raising=False)

    assert rebuild_cli.main(["--stage", "no-such-stage"]) == 2

    assert capsys.readouterr().err.startswith("error: ")
