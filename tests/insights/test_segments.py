"""Describing segments from the catalog: real items only, categories that set a segment apart, short labels."""

from __future__ import annotations

import pytest

from chalicelib.catalog.item import CatalogItem
from chalicelib.errors import EventLogUnavailable
from chalicelib.insights.segments import Segments, describe_segments, segment_categories, segment_label
from chalicelib.models.artifact import make_segments_entry
from tests.support import with_tiny_segments


def item(item_id: str, *categories: str, blocked: bool = False) -> CatalogItem:
    return CatalogItem(item_id=item_id, title=f"Title {item_id}", categories=categories, blocked=blocked)


def test_categories_shared_by_every_segment_rank_below_those_that_set_one_apart():
    own = [item("a", "Sci-Fi", "Drama"), item("b", "Sci-Fi", "Action"), item("c", "Action", "Drama"),
           item("d", "Sci-Fi")]
    other = [item("e", "Drama", "Romance"), item("f", "Drama", "Romance")]

    # Sci-Fi: 3 of 4 here, 3 of 6 overall: lift 1.5; Action 2/4 over 2/6 = 1.5 (fewer items: second);
    # Drama 2/4 over 4/6 = 0.75.
    assert segment_categories(own, own + other) == ["Sci-Fi", "Action", "Drama"]
    assert segment_categories(other, own + other) == ["Romance", "Drama"]


def test_a_category_of_one_item_does_not_describe_a_segment_of_four():
    own = [item("a", "Sci-Fi", "Film-Noir"), item("b", "Sci-Fi"), item("c", "Sci-Fi"), item("d", "Sci-Fi")]

    assert segment_categories(own, own) == ["Sci-Fi"]


def test_labels_name_the_first_two_categories():
    assert segment_label(["Sci-Fi", "Action", "War"], 0) == "Sci-Fi and Action"
    assert segment_label(["Comedy"], 1) == "Comedy"
    assert segment_label([], 3) == "Segment 3"


def test_descriptions_name_only_items_the_catalog_holds_and_does_not_block():
    entry = make_segments_entry([2, 1], [
        [{"item_id": "i3", "users": 1, "lift": 1.5}, {"item_id": "gone", "users": 1, "lift": 1.4},
         {"item_id": "i0", "users": 1, "lift": 1.2}, {"item_id": "bad", "users": 1, "lift": 1.1}],
        [{"item_id": "i1", "users": 1, "lift": 3.0}]], method="by hand")
    catalog = {"i3": item("i3", "Sci-Fi"), "i0": item("i0", "Sci-Fi"), "i1": item("i1", "Comedy"),
               "bad": item("bad", "Sci-Fi", blocked=True)}

    described = describe_segments(entry, catalog)

    assert described == [
        {"segment": 0, "label": "Sci-Fi", "users": 2, "top_categories": ["Sci-Fi"],
         "top_items": [{"item_id": "i3", "title": "Title i3", "categories": ["Sci-Fi"]},
                       {"item_id": "i0", "title": "Title i0", "categories": ["Sci-Fi"]}]},
        {"segment": 1, "label": "Comedy", "users": 1, "top_categories": ["Comedy"],
         "top_items": [{"item_id": "i1", "title": "Title i1", "categories": ["Comedy"]}]},
    ]


class _SilentEventLog:
    def erasures(self, user_ids, deadline=None):
        raise EventLogUnavailable("the event log did not answer in time")


def test_without_the_erasure_marker_there_is_no_users_segment(resources, make_tiny_artifact):
    resources.model_registry.publish(with_tiny_segments(make_tiny_artifact()))
    blind = Segments(resources.live_model, resources.catalog_cache, _SilentEventLog())

    with pytest.raises(EventLogUnavailable):
        blind.for_user("u0")
    assert [segment["users"] for segment in blind.all()["segments"]] == [2, 1]  # the list reads no marker
