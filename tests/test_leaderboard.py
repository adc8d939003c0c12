"""The ranking table and its CSV: ranks skip failures, names come from files or typed names,
and no cell can run as a spreadsheet formula."""
import csv
import io

from fecsim.inference import RankedPhoto
from fecsim.leaderboard import capture_name, display_name, reason, rows, safe_cell, to_csv

RANKED = [RankedPhoto("/t/Ana.jpg", 0.91, None), RankedPhoto("/t/=HYPERLINK(x).jpg", 0.2, None),
          RankedPhoto("/t/cup.png", None, None, "no face found")]
NAMES = {r.source: display_name(r.source) for r in RANKED}


def test_rows_rank_the_scored_photos_and_keep_the_failures_last():
    table = rows(RANKED, NAMES)
    assert [(r["rank"], r["name"], r["probability"]) for r in table] == [
        (1, "Ana", 0.91), (2, "=HYPERLINK(x)", 0.2), (None, "cup", None)]
    assert table[2]["error"] == "no face found"
    assert [reason(r, 0.5) for r in table] == [
        "same expression", "different expression", "not scored: no face found"]


def test_csv_cells_that_look_like_formulas_are_escaped():
    text = to_csv(rows(RANKED, NAMES), threshold=0.5)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["rank", "name", "P(same expression)", "reason"]
    assert parsed[1] == ["1", "Ana", "0.9100", "same expression"]
    assert parsed[2][1] == "'=HYPERLINK(x)"
    assert parsed[3] == ["", "cup", "", "not scored: no face found"]
    for start in "=+-@":
        assert safe_cell(start + "1") == "'" + start + "1"
    assert safe_cell("Zoë") == "Zoë" and safe_cell("a-b") == "a-b"


def test_capture_names_are_safe_file_names_and_unique():
    assert capture_name("Ana", []) == "Ana.jpg"
    assert capture_name("Ana", ["/x/Ana.jpg"]) == "Ana (2).jpg"
    assert capture_name("Ana", ["/x/Ana.jpg", "/y/Ana (2).jpg"]) == "Ana (3).jpg"
    assert capture_name("", ["/x/a.jpg"]) == "capture 2.jpg"
    assert capture_name("../../etc/passwd", []) == "etc passwd.jpg"
    assert capture_name("   ", []) == "capture 1.jpg"
    assert len(capture_name("x" * 500, [])) <= 44
