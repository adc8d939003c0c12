"""The batch CLI on generated fixtures, bad rows included: run in this process (fast tier), and
once as `python -m fecsim` (slow tier)."""
import csv
import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from fecsim.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    """`python -m fecsim ARGS` in this process: its exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exit:   # argparse refusing an argument
            status = exit.code
    return SimpleNamespace(returncode=status, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.mark.slow   # starts a process
def test_the_module_runs_as_a_command(folder, random_checkpoint):
    result = subprocess.run([sys.executable, "-m", "fecsim", "compare", folder / "astro.jpg",
                             folder / "mirror.jpg", "--checkpoint", random_checkpoint],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] in ("same expression", "different expression")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, astronaut):
    d = tmp_path_factory.mktemp("cli")
    Image.fromarray(astronaut).save(d / "astro.jpg")
    Image.fromarray(astronaut[:, ::-1]).save(d / "mirror.jpg")
    Image.new("RGB", (200, 200), (90, 140, 60)).save(d / "grass.jpg")
    (d / "text.jpg").write_text("not an image")
    return d


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_score_pairs_keeps_going_past_bad_rows(folder, random_checkpoint):
    (folder / "pairs.csv").write_text(
        "a,b,box_a,note\n"
        "astro.jpg,mirror.jpg,,good\n"
        f"{folder / 'astro.jpg'},astro.jpg,180 60 268 172,absolute path and a box\n"
        "astro.jpg,grass.jpg,,no face\n"
        "text.jpg,astro.jpg,,not an image\n"
        "gone.jpg,astro.jpg,,missing\n"
        "astro.jpg,astro.jpg,900 900 950 950,box outside\n")
    result = run("score-pairs", folder / "pairs.csv", "--out", folder / "out.csv",
                 "--checkpoint", random_checkpoint, "--batch-size", "2")
    assert result.returncode == 1, result.stderr        # some rows failed
    rows = read(folder / "out.csv")
    assert [r["note"] for r in rows] == ["good", "absolute path and a box", "no face",
                                         "not an image", "missing", "box outside"]
    for row in rows[:2]:
        assert row["error"] == "" and 0 <= float(row["probability"]) <= 1 and row["same"] in "01"
    assert "grass.jpg: no face found" in rows[2]["error"]
    assert "text.jpg: not an image" in rows[3]["error"]
    assert "gone.jpg: no such file" in rows[4]["error"]
    assert "outside" in rows[5]["error"]
    assert all(r["probability"] == "" for r in rows[2:])
    assert "6 rows scored, 4 failed" in result.stderr


def test_score_triplets(folder, random_checkpoint):
    (folder / "triplets.csv").write_text("a,b,c\nastro.jpg,mirror.jpg,astro.jpg\n")
    result = run("score-triplets", folder / "triplets.csv", "--out", folder / "t.csv",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 0, result.stderr
    (row,) = read(folder / "t.csv")
    p = {k: float(row[f"p{k}"]) for k in ("12", "13", "23")}
    assert row["error"] == "" and int(row["odd"]) == {"23": 1, "13": 2, "12": 3}[max(p, key=p.get)]
    assert p["12"] == pytest.approx(p["23"], abs=1e-3)   # images 1 and 3 are the same photo


def test_compare_prints_json(folder, random_checkpoint):
    result = run("compare", folder / "astro.jpg", folder / "mirror.jpg",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["verdict"] in ("same expression", "different expression")


def test_missing_columns_and_bad_checkpoint_are_clear(folder, random_checkpoint, tmp_path):
    (folder / "cols.csv").write_text("x,y\n1,2\n")
    result = run("score-pairs", folder / "cols.csv", "--out", tmp_path / "o.csv",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 2 and "missing column(s) a, b" in result.stderr
    result = run("compare", folder / "astro.jpg", folder / "astro.jpg",
                 "--checkpoint", tmp_path / "none.safetensors")
    assert result.returncode == 2 and "none.safetensors: checkpoint file not found" in result.stderr


# --- Reliability (README): malformed CSVs, and a photo too small to hold a face. ---

def test_malformed_rows_get_their_own_error_and_the_good_rows_are_scored(folder, random_checkpoint):
    (folder / "ragged.csv").write_text(
        "a,b,note\n"
        "astro.jpg,mirror.jpg,good\n"
        "astro.jpg\n"
        "astro.jpg,mirror.jpg,extra,fields\n"
        "mirror.jpg,astro.jpg,good too\n")
    out = folder / "ragged.out.csv"
    result = run("score-pairs", folder / "ragged.csv", "--out", out, "--checkpoint", random_checkpoint)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and not list(folder.glob("*.tmp"))
    rows = read(out)
    assert [r["error"] for r in (rows[0], rows[3])] == ["", ""]
    assert all(0 <= float(r["probability"]) <= 1 for r in (rows[0], rows[3]))
    assert "line 3: 1 field, the header has 3" in rows[1]["error"]
    assert "line 4: 4 fields, the header has 3" in rows[2]["error"]
    assert rows[1]["probability"] == rows[2]["probability"] == ""


def test_a_csv_saved_by_excel_with_a_bom_is_read(folder, random_checkpoint):
    (folder / "excel.csv").write_bytes("\ufeffa,b\r\nastro.jpg,mirror.jpg\r\n".encode("utf-8"))
    result = run("score-pairs", folder / "excel.csv", "--out", folder / "excel.out.csv",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 0, result.stderr
    assert float(read(folder / "excel.out.csv")[0]["probability"]) >= 0


def test_a_csv_that_is_not_utf8_is_one_line_naming_the_line(folder, random_checkpoint, tmp_path):
    (folder / "latin1.csv").write_bytes("a,b\nastro.jpg,mirror.jpg\ncafé.jpg,astro.jpg\n".encode("latin-1"))
    result = run("score-pairs", folder / "latin1.csv", "--out", tmp_path / "o.csv",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "latin1.csv: line 3 is not UTF-8 text" in result.stderr


@pytest.mark.parametrize("size", ["0", "-1", "two"])
def test_batch_size_must_be_a_positive_whole_number(folder, tmp_path, size):
    (tmp_path / "p.csv").write_text("a,b\nastro.jpg,astro.jpg\n")
    result = run("score-pairs", tmp_path / "p.csv", "--out", tmp_path / "o.csv",
                 "--batch-size", size)
    assert result.returncode == 2 and "--batch-size" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_one_pixel_photo_is_a_clear_error_in_compare_and_score_pairs(folder, random_checkpoint):
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    result = run("compare", folder / "dot.png", folder / "astro.jpg", "--checkpoint", random_checkpoint)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "dot.png: 1x1 pixels is too small" in result.stderr
    (folder / "dots.csv").write_text("a,b\ndot.png,astro.jpg\nastro.jpg,mirror.jpg\n")
    result = run("score-pairs", folder / "dots.csv", "--out", folder / "dots.out.csv",
                 "--checkpoint", random_checkpoint)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    bad, good = read(folder / "dots.out.csv")
    assert "too small" in bad["error"] and good["error"] == "" and good["probability"]
