"""The one factory of clients and stores: what it builds, that it keeps it, and the app's instance."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone

import botocore.session

from chalicelib.config import environment_of
from chalicelib.eventlog.item import Event
from chalicelib.resources import SCAN_READ_TIMEOUT_SECONDS, Resources, app_resources, reset_app_resources


def test_provision_creates_the_bucket_and_the_event_table_with_its_time_index(settings):
    fresh = Resources(replace(settings, model_bucket=f"fresh-{uuid.uuid4().hex[:8]}",
                              events_table=f"fresh-{uuid.uuid4().hex[:8]}"))

    fresh.provision()
    fresh.provision()  # a second time finds both and changes nothing

    assert fresh.model_registry.list_versions() == []
    event = Event("u1", "i1", "view", "e1", datetime.now(timezone.utc))
    assert fresh.event_log.write([event]).stored == [0]
    assert [e.event_id for e in fresh.event_log.recent("u1", 5).events] == ["e1"]  # a Query of the time index


def test_each_client_and_store_is_built_once_and_shared(resources):
    for name in ("s3", "model_store", "model_registry", "event_table", "scan_table", "event_log", "event_rules",
                 "live_model", "personalizer", "insights"):
        assert getattr(resources, name) is getattr(resources, name), name
    for name in ("counter_table", "counters", "counter_reader", "content_performance", "trending"):
        assert getattr(resources.insights, name) is getattr(resources.insights, name), name
    again = Resources(resources.settings)  # a second instance on the same endpoints shares the connections
    assert (again.s3, again.event_table, again.scan_table) == (resources.s3, resources.event_table, resources.scan_table)


def test_every_botocore_session_shares_one_loader_of_botocore_data(resources):
    # pynamodb opens a session per table connection and thread; each parsing botocore's JSON again
    # cost a cold instance tenths of a second (README, Performance, P2).
    def loader_of_table(table):
        return table._get_connection().connection.session.get_component("data_loader")

    loaders = [loader_of_table(resources.event_table), loader_of_table(resources.scan_table),
               loader_of_table(resources.insights.counter_table),
               botocore.session.get_session().get_component("data_loader")]
    with ThreadPoolExecutor(1) as other_thread:  # a new thread gets a new pynamodb session
        loaders.append(other_thread.submit(loader_of_table, resources.event_table).result())
    assert all(loader is loaders[0] for loader in loaders)
    assert resources.s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200  # clients still work


def test_tables_for_requests_and_for_scans_differ_only_in_patience(resources):
    request, scan = resources.event_table.Meta, resources.scan_table.Meta
    assert (request.table_name, request.host) == (scan.table_name, scan.host) == (
        resources.settings.events_table, resources.settings.dynamodb_endpoint_url)
    assert scan.read_timeout_seconds == SCAN_READ_TIMEOUT_SECONDS > request.read_timeout_seconds


def test_the_app_reads_its_settings_once_until_reset(settings, monkeypatch):
    for name, value in environment_of(settings).items():
        monkeypatch.setenv(name, value)
    reset_app_resources()
    try:
        first = app_resources()
        monkeypatch.setenv("EVENTS_TABLE", "another-table")
        assert app_resources() is first and first.settings == settings

        reset_app_resources()

        assert app_resources().settings.events_table == "another-table"
    finally:
        reset_app_resources()
