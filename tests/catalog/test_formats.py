"""Catalog files: each format's rows become the items the API would accept; bad rows are rejected by line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chalicelib.catalog.formats import (
    CHUNK,
    KEPT_REJECTIONS,
    READERS,
    CatalogImportSummary,
    check_row,
    import_file,
)
from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.errors import InvalidRequest

MOVIELENS = Path(__file__).resolve().parents[2] / "data" / "movielens-100k"
#: u.genre's order: unknown, Action, Adventure, Animation, Children's, Comedy, ..., Sci-Fi (15), ...
FLAGS_STAR_WARS = "0|1|1|0|0|0|0|0|0|0|0|0|0|0|1|1|0|1|0"
FLAGS_UNKNOWN_ONLY = "1|" + "|".join("0" * 18)


def parse(path: Path, file_format: str) -> tuple[dict[str, CatalogItem], CatalogImportSummary]:
    """Every valid item of *path* by id, and the summary counting the rest."""
    summary = CatalogImportSummary()
    items = {}
    for line_number, raw in READERS[file_format](path):
        item = check_row(line_number, raw, summary)
        if item is not None:
            items[item.item_id] = item
    return items, summary


def rejected_lines(summary: CatalogImportSummary) -> list[int]:
    return [line for line, _ in summary.rejections]


@pytest.fixture
def u_item(tmp_path):
    """Write a ``u.item`` beside a copy of the bundled ``u.genre``; returns the writer."""
    shutil.copy(MOVIELENS / "u.genre", tmp_path / "u.genre")

    def write(*lines: str) -> Path:
        path = tmp_path / "u.item"
        path.write_bytes("".join(f"{line}\n" for line in lines).encode("latin-1"))
        return path

    return write


# --- MovieLens-100k ---------------------------------------------------------------------------------


def test_a_movie_gets_its_genres_year_release_date_and_imdb_link(u_item):
    path = u_item(f"50|Star Wars (1977)|01-Jan-1977||http://us.imdb.com/M/title-exact?Star%20Wars%20(1977)|"
                  f"{FLAGS_STAR_WARS}")

    items, summary = parse(path, "movielens-100k")

    assert (summary.read, summary.rejected) == (1, 0)
    assert items["50"] == CatalogItem(
        "50", "Star Wars (1977)", url="http://us.imdb.com/M/title-exact?Star%20Wars%20(1977)",
        categories=("Action", "Adventure", "Romance", "Sci-Fi", "War"),
        attributes={"release_date": "01-Jan-1977", "year": 1977.0})


def test_a_movie_without_link_date_or_final_year_has_none_and_unknown_is_no_category(u_item):
    path = u_item(f"267|unknown||||{FLAGS_UNKNOWN_ONLY}",
                  f"1412|Land Before Time III (1995) (V)|01-Jan-1995||not a link|{FLAGS_UNKNOWN_ONLY}",
                  f"1635|Two Friends (1986) |01-Jan-1986|||{FLAGS_UNKNOWN_ONLY}",
                  f"543|Mis\u00e9rables, Les (1995)|01-Jan-1995|||{FLAGS_UNKNOWN_ONLY}")

    items, summary = parse(path, "movielens-100k")

    assert summary.rejected == 0
    assert items["267"] == CatalogItem("267", "unknown")
    assert (items["1412"].url, items["1412"].attributes) == (None, {"release_date": "01-Jan-1995"})
    assert (items["1635"].title, items["1635"].attributes["year"]) == ("Two Friends (1986)", 1986.0)
    assert items["543"].title == "Misérables, Les (1995)"  # Latin-1, as the file is written


def test_bad_movie_rows_are_rejected_by_line_and_the_others_kept(u_item):
    path = u_item(f"1|Toy Story (1995)|01-Jan-1995|||{FLAGS_STAR_WARS}",
                  f"2|   |01-Jan-1995|||{FLAGS_STAR_WARS}",   # a title empty once stripped
                  "",
                  "4|Too Few Fields (1995)|01-Jan-1995",
                  f"5|Bad Flag (1995)|01-Jan-1995|||2|{FLAGS_STAR_WARS[2:]}",
                  f"6%41|Bad Id (1995)|01-Jan-1995|||{FLAGS_STAR_WARS}",
                  f"7|Seven (1995)|01-Jan-1995|||{FLAGS_STAR_WARS}")

    items, summary = parse(path, "movielens-100k")

    assert sorted(items) == ["1", "7"]
    assert (summary.read, summary.rejected) == (6, 4)
    assert rejected_lines(summary) == [2, 4, 5, 6]
    messages = dict(summary.rejections)
    assert messages[2].startswith("line 2: item.title must be non-empty")
    assert messages[4] == "line 4: expected 24 '|'-separated fields (5 + one flag per genre), found 3"
    assert messages[5] == "line 5: genre flags must be 0 or 1"
    assert messages[6].startswith("line 6: item.item_id")


def test_the_bundled_sample_is_read_whole():
    items, summary = parse(MOVIELENS / "u.item", "movielens-100k")

    assert (summary.read, summary.rejected, len(items)) == (1682, 0, 1682)
    assert items["50"].title == "Star Wars (1977)" and "Sci-Fi" in items["50"].categories
    assert sum(1 for item in items.values() if "year" in item.attributes) > 1600


def test_a_malformed_genre_file_stops_the_read(u_item, tmp_path):
    path = u_item(f"1|Toy Story (1995)|01-Jan-1995|||{FLAGS_STAR_WARS}")
    (tmp_path / "u.genre").write_text("unknown|0\nAction|2\n")

    with pytest.raises(InvalidRequest, match="without gaps"):
        list(READERS["movielens-100k"](path))


# --- CSV ------------------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "items.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_carry_categories_price_flags_and_extra_columns_as_attributes(tmp_path):
    path = write_csv(tmp_path, (
        "item_id,title,url,categories,price,currency,available,blocked,brand\n"
        "sku-1,Blue Mug,https://shop.example/mug,Kitchen| Mugs |,9.5,EUR,false,1,Acme\n"
        "sku-2, Tea (loose) ,,,,,,,\n"
    ))

    items, summary = parse(path, "csv")

    assert (summary.read, summary.rejected) == (2, 0)
    assert items["sku-1"] == CatalogItem(
        "sku-1", "Blue Mug", url="https://shop.example/mug", categories=("Kitchen", "Mugs"),
        price=Price(9.5, "EUR"), available=False, blocked=True, attributes={"brand": "Acme"})
    assert items["sku-2"] == CatalogItem("sku-2", "Tea (loose)")


def test_bad_csv_rows_are_rejected_by_line_and_the_others_kept(tmp_path):
    path = write_csv(tmp_path, (
        "item_id,title,price,currency,available\n"
        "a,Good A,,,\n"
        "b,,,,\n"                      # no title
        "c,Bad Price,cheap,EUR,\n"
        "d,Half Price,3,,\n"
        "e,Bad Flag,,,maybe\n"
        "f,Too Many,1,EUR,true,extra\n"
        '"g","Quoted, with comma",1.25,USD,TRUE\n'
    ))

    items, summary = parse(path, "csv")

    assert sorted(items) == ["a", "g"]
    assert items["g"].title == "Quoted, with comma" and items["g"].price == Price(1.25, "USD")
    assert rejected_lines(summary) == [3, 4, 5, 6, 7]
    messages = dict(summary.rejections)
    assert messages[3] == "line 3: item.title is required"
    assert messages[4] == "line 4: price 'cheap' is not a number"
    assert messages[5] == "line 5: price and currency go together: give both or neither"
    assert messages[6] == "line 6: available must be true, false, 1 or 0, got 'maybe'"
    assert messages[7] == "line 7: more fields than the header names"


def test_bytes_that_are_not_utf8_reject_only_their_row(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"\xef\xbb\xbfitem_id,title\n1,Caf\xe9\n2,Caf\xc3\xa9\n")  # a BOM, then Latin-1 and UTF-8

    items, summary = parse(path, "csv")

    assert list(items) == ["2"] and items["2"].title == "Café"
    assert rejected_lines(summary) == [2] and "surrogate" in summary.rejections[0][1]


@pytest.mark.parametrize(("header", "complaint"), [
    ("item_id,name", "must name item_id and title"),
    ("item_id,title,title", "repeats title"),
    ("item_id,title,release date", "cannot"),
    ("", "must name item_id and title"),
])
def test_a_csv_header_that_cannot_work_stops_the_read(tmp_path, header, complaint):
    path = write_csv(tmp_path, f"{header}\n1,x,y\n")

    with pytest.raises(InvalidRequest, match=complaint):
        list(READERS["csv"](path))


# --- JSON lines -----------------------------------------------------------------------------------


def test_jsonl_lines_are_items_as_the_api_takes_them_and_bad_ones_are_rejected(tmp_path):
    good = {"item_id": "50", "title": "Star Wars (1977)", "categories": ["Sci-Fi"],
            "price": {"amount": 3.99, "currency": "USD"}, "attributes": {"year": 1977}}
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"item_id": "9", "title": "Nine", "colour": "red"}),
        json.dumps({"item_id": "10", "title": "Ten", "blocked": True}),
    ]) + "\n", encoding="utf-8")

    items, summary = parse(path, "jsonl")

    assert items["50"] == CatalogItem("50", "Star Wars (1977)", categories=("Sci-Fi",), price=Price(3.99, "USD"),
                                      attributes={"year": 1977.0})
    assert items["10"].blocked is True
    assert (summary.read, summary.rejected) == (5, 3)
    assert rejected_lines(summary) == [2, 4, 5]
    messages = dict(summary.rejections)
    assert messages[2].startswith("line 2: not JSON: ")
    assert messages[4] == "line 4: item must be a JSON object, got list"
    assert messages[5].startswith("line 5: item.colour is not an accepted field")


def test_only_the_first_rejection_messages_are_kept_but_all_are_counted(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("{}\n" * (KEPT_REJECTIONS + 5))

    _, summary = parse(path, "jsonl")

    assert summary.rejected == KEPT_REJECTIONS + 5
    assert rejected_lines(summary) == list(range(1, KEPT_REJECTIONS + 1))


# --- the import's chunks --------------------------------------------------------------------------


class RecordingCatalog:
    """Takes the chunks an import sends, as ``Catalog.put`` would."""

    def __init__(self) -> None:
        self.chunks: list[list[CatalogItem]] = []

    def put(self, items: list[CatalogItem]) -> list[CatalogItem]:
        self.chunks.append(list(items))
        return items


def test_an_import_sends_chunks_without_repeated_ids_and_the_later_row_wins(tmp_path):
    rows = [{"item_id": str(n), "title": f"Item {n}"} for n in range(2 * CHUNK + 10)]
    rows.insert(5, {"item_id": "3", "title": "Item 3, corrected"})  # repeats an id of the same chunk
    rows.insert(50, {"title": "no id"})
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    catalog = RecordingCatalog()
    progress: list[int] = []

    summary = import_file(path, "jsonl", catalog, progress=progress.append)

    assert (summary.read, summary.stored, summary.rejected) == (len(rows), len(rows) - 1, 1)
    assert all(len(chunk) <= CHUNK for chunk in catalog.chunks)
    assert all(len({item.item_id for item in chunk}) == len(chunk) for chunk in catalog.chunks)
    stored = [item for chunk in catalog.chunks for item in chunk]
    last_of_3 = [item.title for item in stored if item.item_id == "3"][-1]
    assert last_of_3 == "Item 3, corrected"
    assert sum(progress) == len(rows)


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(InvalidRequest, match="unknown format 'xml'"):
        import_file(tmp_path / "items.xml", "xml", RecordingCatalog())
