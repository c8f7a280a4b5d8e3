from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from llavero.console.charts import OUTCOME_COLORS, PLOT_HEIGHT, bar_chart, line_chart
from llavero.core.codes import Code

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(\"x\")</script> & 'y'"


def parse(svg: Markup) -> ET.Element:
    assert isinstance(svg, Markup)
    return ET.fromstring(str(svg))


def texts(root: ET.Element, tag: str) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}{tag}")]


def assert_accessible(root: ET.Element, title: str) -> None:
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_el, desc_el = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title_el is not None and desc_el is not None
    assert title_el.text == title
    assert root.get("aria-labelledby") == f"{title_el.get('id')} {desc_el.get('id')}"


def test_bar_chart_stacks_outcomes_in_proportion() -> None:
    root = parse(bar_chart([("10:00", {"NOT_FOUND": 1, "VALID": 3})], title="Solicitudes"))
    assert_accessible(root, "Solicitudes")
    bars = {
        (rect.find(f"{SVG}title").text or "").split(" · ")[1]: rect  # type: ignore[union-attr]
        for rect in root.iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    }
    assert set(bars) == {"VALID: 3", "NOT_FOUND: 1"}
    valid, not_found = bars["VALID: 3"], bars["NOT_FOUND: 1"]
    assert float(valid.get("height", 0)) == pytest.approx(PLOT_HEIGHT * 3 / 4)
    assert float(not_found.get("height", 0)) == pytest.approx(PLOT_HEIGHT / 4)
    assert float(not_found.get("y", 0)) < float(valid.get("y", 0))  # VALID at the bottom
    assert valid.get("fill") == OUTCOME_COLORS["VALID"]
    assert {"VALID", "NOT_FOUND"} <= set(texts(root, "text"))  # legend
    assert "10:00: VALID 3, NOT_FOUND 1" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_bar_chart_axis_uses_round_steps() -> None:
    series = [(f"{hour}:00", {"VALID": hour}) for hour in range(8)]
    root = parse(bar_chart(series, title="t"))
    assert [t for t in texts(root, "text") if t.isdigit()][:5] == ["0", "2", "4", "6", "8"]
    big = parse(bar_chart([("d", {"VALID": 7300})], title="t"))
    assert "8\u202f000" in texts(big, "text")


def test_bar_chart_escapes_labels_codes_titles_and_colours() -> None:
    svg = bar_chart(
        [(EVIL, {EVIL: 2, "VALID": 1})],
        title=EVIL,
        colors={EVIL: '"/><script>x</script>'},
        description=EVIL,
    )
    assert "<script>" not in svg
    root = parse(svg)
    assert_accessible(root, EVIL)
    assert root.find(f"{SVG}desc").text == EVIL  # type: ignore[union-attr]
    assert EVIL in texts(root, "text")
    assert f"{EVIL} · {EVIL}: 2" in texts(root, "title")
    assert '"/><script>x</script>' in {rect.get("fill") for rect in root.iter(f"{SVG}rect")}


def test_bar_chart_without_data_is_an_empty_frame() -> None:
    root = parse(bar_chart([], title="Sin datos"))
    assert_accessible(root, "Sin datos")
    assert list(root.iter(f"{SVG}rect")) == []
    assert texts(root, "text") == ["0"]


def test_bar_chart_with_only_zero_buckets() -> None:
    root = parse(bar_chart([("a", {"VALID": 0}), ("b", {})], title="t"))
    assert [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None] == []
    assert {"a", "b"} <= set(texts(root, "text"))


def test_bar_chart_colours_unknown_codes_and_honours_overrides() -> None:
    root = parse(bar_chart([("a", {"VALID": 1, "ZZZ": 1})], title="t", colors={"VALID": "#000"}))
    fills = {
        (rect.find(f"{SVG}title").text or "").rsplit(" · ", 1)[1]: rect.get("fill")  # type: ignore[union-attr]
        for rect in root.iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    }
    assert fills["VALID: 1"] == "#000"
    assert fills["ZZZ: 1"] not in (None, "#000")


def test_bar_chart_thins_crowded_labels() -> None:
    series = [(f"b{i}", {"VALID": 1}) for i in range(60)]
    labels = [t for t in texts(parse(bar_chart(series, title="t")), "text") if t.startswith("b")]
    assert 1 < len(labels) <= 8 and labels[0] == "b0"


def test_bar_chart_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        bar_chart([("a", {"VALID": -1})], title="t")


def test_line_chart_draws_every_point() -> None:
    points = [("1 ago", 0.0), ("2 ago", 1500.0), ("3 ago", 250.5)]
    root = parse(line_chart(points, title="Unidades"))
    assert_accessible(root, "Unidades")
    (line,) = root.iter(f"{SVG}polyline")
    coordinates = [tuple(map(float, pair.split(","))) for pair in line.get("points", "").split()]
    assert len(coordinates) == 3
    assert coordinates[0][1] > coordinates[2][1] > coordinates[1][1]  # higher value, smaller y
    assert texts(root, "title")[1:] == ["1 ago: 0", "2 ago: 1\u202f500", "3 ago: 250.5"]


def test_line_chart_with_one_point_is_a_centred_marker() -> None:
    root = parse(line_chart([("hoy", 42.0)], title="t"))
    assert list(root.iter(f"{SVG}polyline")) == []
    (marker,) = root.iter(f"{SVG}circle")
    assert float(marker.get("cx", 0)) == pytest.approx((56 + 640 - 16) / 2)


def test_line_chart_without_data_and_escaping() -> None:
    empty = parse(line_chart([], title=EVIL))
    assert_accessible(empty, EVIL)
    assert list(empty.iter(f"{SVG}circle")) == []
    root = parse(line_chart([(EVIL, 1.0), ("b", 2.0)], title="t"))
    assert EVIL in texts(root, "text")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_line_chart_refuses_values_it_cannot_draw(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        line_chart([("a", bad)], title="t")


def test_every_verify_code_has_its_own_colour() -> None:
    assert sorted(OUTCOME_COLORS) == sorted(Code)
    assert len(set(OUTCOME_COLORS.values())) == len(OUTCOME_COLORS)
