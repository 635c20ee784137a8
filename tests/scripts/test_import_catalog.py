"""scripts/import_catalog.py: imports the bundled movies and CSV files into the catalog, with its exit statuses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from chalicelib.resources import Resources
from tests.support import load_script

import_cli = load_script("import_catalog")
SAMPLE_ITEMS = Path(__file__).resolve().parents[2] / "data" / "movielens-100k" / "u.item"


def use_stage(monkeypatch, settings, stages: list[str] | None = None) -> None:
    """Let the CLI's ``--stage`` name *settings*, recording the stages it asked for."""
    def settings_for_stage(stage):
        if stages is not None:
            stages.append(stage)
        return settings

    monkeypatch.setattr(import_cli, "settings_for_stage", settings_for_stage)


def test_the_bundled_movies_are_imported_whole(dynamodb_settings, monkeypatch, capsys):
    stages: list[str] = []
    use_stage(monkeypatch, dynamodb_settings, stages)

    code = import_cli.main([str(SAMPLE_ITEMS), "--format", "movielens-100k", "--stage", "dev"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert stages == ["dev"]
    assert "read 1682, stored 1682, rejected 0 in " in out and dynamodb_settings.catalog_table_name in out
    catalog = Resources(dynamodb_settings).catalog
    assert len(catalog.get_many([str(n) for n in range(1, 1700)])) == 1682
    star_wars = catalog.get("50")
    assert star_wars.title == "Star Wars (1977)"
    assert "Sci-Fi" in star_wars.categories
    assert star_wars.url == "http://us.imdb.com/M/title-exact?Star%20Wars%20(1977)"


def test_a_csv_with_a_bad_row_stores_the_rest_and_exits_1(settings, resources, monkeypatch, tmp_path, capsys):
    use_stage(monkeypatch, settings)
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,categories,price,currency,brand\n"
                    "sku-1,Blue Mug,Kitchen|Mugs,9.5,EUR,Acme\n"
                    "sku-2,Red Mug,Kitchen,cheap,EUR,Acme\n"
                    "sku-3,Teapot,,,,\n")

    code = import_cli.main([str(path), "--format", "csv"])

    out = capsys.readouterr().out
    assert code == 1, out
    assert "read 3, stored 2, rejected 1 in " in out
    assert "  rejected line 3: price 'cheap' is not a number" in out
    stored = resources.catalog.get_many(["sku-1", "sku-2", "sku-3"])
    assert sorted(stored) == ["sku-1", "sku-3"]
    assert stored["sku-1"].categories == ("Kitchen", "Mugs") and stored["sku-1"].attributes == {"brand": "Acme"}


def test_a_missing_file_exits_2(settings, monkeypatch, tmp_path, capsys):
    use_stage(monkeypatch, settings)

    assert import_cli.main([str(tmp_path / "absent.csv"), "--format", "csv"]) == 2
    assert "error: " in capsys.readouterr().err


def test_a_header_without_title_exits_2(settings, monkeypatch, tmp_path, capsys):
    use_stage(monkeypatch, settings)
    path = tmp_path / "items.csv"
    path.write_text("item_id,name\n1,Mug\n")

    assert import_cli.main([str(path), "--format", "csv"]) == 2
    assert "the header must name item_id and title" in capsys.readouterr().err


def test_an_unreachable_catalog_exits_2(settings, monkeypatch, tmp_path, capsys):
    use_stage(monkeypatch, replace(settings, catalog_table="never-provisioned"))
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "1", "title": "Mug"}\n')

    assert import_cli.main([str(path), "--format", "jsonl"]) == 2
    assert "error: the catalog did not take the items in time" in capsys.readouterr().err
