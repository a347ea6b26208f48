"""Exercises: blocks left for the learner, filled the way a learner would (openpyxl, a formula
dragged from the worked cell, right or wrong in the common ways), recalculated by LibreOffice,
and graded against torch."""

import json
import os
import re
import subprocess
import sys

import openpyxl
import pytest

import xlnet
from xlnet.cli import main
from xlnet.workbook import read
from xlnet.workbook.fillpatterns import moved, relative

from conftest import LESSONS, check, needs_libreoffice, needs_warm_libreoffice


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    out = tmp_path_factory.mktemp("exercises")
    paths = xlnet.build(["conv"], out=out, exercise="all") + xlnet.build(["softmax"], out=out, exercise="log_probs")
    paths += xlnet.build(["embeddings"], out=out, exercise="dot_pred")
    return {p.stem.split("-")[0]: p for p in paths}


def _cells(wb, manifest, block):
    """The block's cells tile by tile, with each tile's worked pattern."""
    info = manifest["tensors"][block]
    for t, tile in enumerate(info["tiles"]):
        sheet, rng = list(wb.defined_names[tile].destinations)[0]
        yield [c for row in wb[sheet][rng.replace("$", "")] for c in row], info["exercise"]["patterns"][t]


def fill(source, target, block, mistake=None, upto=None):
    """Fill ``block`` as a learner would: the worked cell's formula dragged over the block.

    mistake: None (right), ``dollar`` (typed without $ and dragged), ``relu`` (MAX(0, left out),
    ``log`` (LOG for LN), ``window`` (each window one row late), ``typed`` (numbers typed in),
    ``tiles`` (the first tile's worked cell dragged into every tile).
    upto: fill only the first ``upto`` cells of each tile (half done)."""
    wb = openpyxl.load_workbook(source)
    manifest = read.read_workbook(source).manifest
    tiles = [(cells[0], pattern) for cells, pattern in _cells(wb, manifest, block)]
    for cells, pattern in _cells(wb, manifest, block):
        first = cells[0]
        for n, cell in enumerate(cells[:upto]):
            if mistake == "dollar":
                formula = moved(pattern.replace("$", ""), (first.row, first.column), (cell.row, cell.column))
            else:
                formula = moved(pattern, (first.row, first.column), (cell.row, cell.column))
            if mistake == "relu":
                formula = formula.replace("MAX(0,", "(")
            if mistake == "log":
                formula = formula.replace("LN(", "LOG(")
            if mistake == "window" and n:  # each window one row down; the anchored kernel stays
                formula = moved(pattern, (first.row, first.column), (cell.row + 1, cell.column))
            if mistake == "tiles":  # the first map's worked cell dragged into every map
                origin = tiles[0][0]
                formula = moved(tiles[0][1], (origin.row, origin.column), (cell.row, cell.column))
            cell.value = 0.5 if mistake == "typed" and n else formula
    wb.save(target)
    return target


def test_exercise_book_leaves_blocks_for_the_learner(books):
    wb = openpyxl.load_workbook(books["conv"])
    manifest = read.read_workbook(books["conv"]).manifest
    ws = wb["conv"]
    for block in ("conv1_out", "pool_out", "probs"):
        info = manifest["tensors"][block]
        instruction = info["exercise"]["instruction"]
        assert "done for you" in instruction
        tiles = list(_cells(wb, manifest, block))
        for cells, _ in tiles:  # a worked cell per tile: a formula dragged from another tile is wrong
            worked = cells[0]
            assert isinstance(worked.value, str) and worked.value.startswith("="), f"{block}: a worked cell per tile"
            assert worked.comment is not None and "Exercise" in worked.comment.text
        rest = [c for cells, _ in tiles for c in cells[1:]]
        assert rest and all(c.value is None for c in rest), f"{block}: the learner's cells are empty"
        assert all(c.border.left.style == "medium" for c in rest), f"{block}: the learner's cells are outlined"
        if len(tiles) > 1:
            assert "Each map's first cell is done for you" in instruction
    assert "The window moves 2 cells" in manifest["tensors"]["pool_out"]["exercise"]["instruction"]
    caption = ws.cell(15, 2).value
    assert caption.startswith("Exercise: fill each cell with the ReLU of the conv sum")
    # downstream blocks still compute, from the learner's cells
    assert ws["B32"].value.startswith("=SUMPRODUCT(B17:D19")
    assert manifest["settings"]["exercises"] == ["conv1_out", "pool_out", "probs"]


def test_unknown_exercise_block_is_one_line(tmp_path, capsys):
    assert main(["build", "conv", "--exercise", "conv9", "--out", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--exercise conv9" in err and "conv1_out" in err
    assert list(tmp_path.iterdir()) == [], "no half-written file"
    assert main(["build", "conv", "softmax", "--exercise", "exps", "--out", str(tmp_path)]) == 2
    assert "name one lesson" in capsys.readouterr().err


def test_list_exercises(capsys):
    assert main(["list", "--exercises"]) == 0
    out = capsys.readouterr().out
    for lesson in LESSONS:
        assert f"xlnet build {lesson} --exercise all" in out
    assert "conv1_out" in out and "log_probs" in out and "dot_pred" in out


@needs_libreoffice
def test_grading_right_wrong_empty_half_done(books, tmp_path):
    conv = books["conv"]
    files = {
        "right": fill(conv, tmp_path / "right.xlsx", "conv1_out"),
        "dollar": fill(conv, tmp_path / "dollar.xlsx", "conv1_out", "dollar"),
        "relu": fill(conv, tmp_path / "relu.xlsx", "conv1_out", "relu"),
        "window": fill(conv, tmp_path / "window.xlsx", "conv1_out", "window"),
        "typed": fill(conv, tmp_path / "typed.xlsx", "conv1_out", "typed"),
        "half": fill(conv, tmp_path / "half.xlsx", "conv1_out", upto=18),
        "log": fill(books["softmax"], tmp_path / "log.xlsx", "log_probs", "log"),
        "ln": fill(books["softmax"], tmp_path / "ln.xlsx", "log_probs"),
        "empty": conv,
    }
    reports = {name: r for name, r in zip(files, check(list(files.values())))}
    graded = {name: {e["tensor"]: e for e in r.exercises} for name, r in reports.items()}

    right = graded["right"]["conv1_out"]
    assert right["done"] and right["right"] == right["cells"] == 72 and right["first_cell"] == ""
    # the blocks downstream of it now check too
    assert next(b for b in reports["right"].blocks if b.tensor == "conv2_pre").status == "pass"
    assert not reports["right"].passed  # pool_out and probs are still to do
    assert graded["right"]["pool_out"]["empty"] == 6  # a worked cell in each of the 2 maps

    empty = graded["empty"]["conv1_out"]
    assert empty["right"] == 2 and empty["empty"] == 70 and empty["found"] == "empty"  # 2 maps, 2 worked cells
    assert empty["first_cell"] == "conv!C17"
    # an empty cell is not yet filled in, not a typed value where a formula belongs
    assert next(b for b in reports["empty"].blocks if b.tensor == "conv1_out").status == "fail"
    assert next(b for b in reports["half"].blocks if b.tensor == "conv1_out").status == "fail"

    half = graded["half"]["conv1_out"]
    assert half["empty"] == 72 - 2 * 18 and 0 < half["right"] < 72

    dollar = graded["dollar"]["conv1_out"]
    assert not dollar["done"] and "missing $" in dollar["hint"] and "$K$6" in dollar["hint"]
    assert dollar["expected"] is not None and dollar["found"] != "empty"

    relu = graded["relu"]["conv1_out"]
    assert "MAX(0" in relu["hint"] and float(relu["found"]) < 0 and relu["expected"] == 0

    window = graded["window"]["conv1_out"]
    assert "off-by-one window" in window["hint"], window

    typed = graded["typed"]["conv1_out"]
    assert "typed number" in typed["hint"]
    assert next(b for b in reports["typed"].blocks if b.tensor == "conv1_out").status == "values"

    log = graded["log"]["log_probs"]
    assert log["right"] == 0 and "LN" in log["hint"] and "LOG" in log["hint"]
    assert graded["ln"]["log_probs"]["done"] and reports["ln"].passed

    text = reports["dollar"].text()
    assert "exercises: 0 of 3 done" in text and "hint: a missing $" in text


@needs_libreoffice
def test_fill_drag_of_embeddings_predictions_and_class_grading_json(books, tmp_path):
    emb = books["embeddings"]
    wb = openpyxl.load_workbook(emb)
    manifest = read.read_workbook(emb).manifest
    (cells, pattern), = list(_cells(wb, manifest, "dot_pred"))
    first = cells[0]
    assert relative(pattern, first.row, first.column) == relative(
        moved(pattern, (first.row, first.column), (cells[-1].row, cells[-1].column)), cells[-1].row, cells[-1].column)
    good = fill(emb, tmp_path / "alice.xlsx", "dot_pred")
    bad = fill(emb, tmp_path / "bob.xlsx", "dot_pred", "dollar")
    run = subprocess.run([sys.executable, "-m", "xlnet", "check", str(good), str(bad), "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    reports = json.loads(run.stdout)
    alice, bob = ({e["tensor"]: e for e in r["exercises"]} for r in reports)
    assert alice["dot_pred"]["done"] and reports[0]["passed"]
    assert not bob["dot_pred"]["done"] and "missing $" in bob["dot_pred"]["hint"]


@needs_warm_libreoffice
def test_a_class_graded_at_once_shows_exercises_done(books, tmp_path):
    good = fill(books["embeddings"], tmp_path / "carol.xlsx", "dot_pred")
    run = subprocess.run([sys.executable, "-m", "xlnet", "check", str(good), str(books["embeddings"]), "--jobs", "2"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines()
            if len(line.split()) > 2 and re.fullmatch(r"\d+/\d+", line.split()[1])}  # the summary table
    assert "exercises done" in run.stdout
    assert rows[str(good)].split()[2:4] == ["1/1", "OK"]
    assert rows[str(books["embeddings"])].split()[2:4] == ["0/1", "MISMATCH"]


@needs_libreoffice
def test_watch_tells_the_learner_how_far_they_are(books, tmp_path):
    """``--count 1``: the check at the start, then one save, then it stops."""
    start = fill(books["conv"], tmp_path / "mine.xlsx", "conv1_out", "relu", upto=3)
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", "watch", str(start), "--count", "1", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        seen = [proc.stdout.readline() for _ in range(2)]  # the header, then the first check
        assert "mine.xlsx:" in seen[1], "".join(seen) + proc.stderr.read()
        saving = tmp_path / "mine.saving"
        fill(books["conv"], saving, "conv1_out", "relu", upto=10)
        os.replace(saving, start)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    after = out.split("mine.xlsx:")[-1]  # the check of the save
    assert "exercise conv1_out:" in after and "hint: a missing MAX(0" in after
    assert "FAIL  conv layer 1" not in after  # the exercise line says it, with a hint


def test_hints_tell_the_common_mistakes_apart():
    from xlnet.checking.exercises import hint
    worked = "=MAX(0,SUMPRODUCT(C7:E9,$K$6:$M$8))"  # the worked cell's formula, moved to this cell
    assert "missing $" in hint(worked, "=MAX(0,SUMPRODUCT(C7:E9,L7:N9))", 1.0, 2.0)
    assert "off-by-one" in hint(worked, "=MAX(0,SUMPRODUCT(C8:E10,$K$6:$M$8))", 1.0, 2.0)
    assert "MAX(0" in hint(worked, "=SUMPRODUCT(C7:E9,$K$6:$M$8)", -1.5, 0.0)
    assert "LN" in hint("=softmax!H8-LN(softmax!$H15)", "=softmax!H8-LOG(softmax!$H15)", 1.0, 2.0)
    assert "LN" in hint("=-LN(B5)", "=-LOG10(B5)", 1.0, 2.0)
    assert "typed number" in hint(worked, "", 3.0, 2.0, typed=True)
    # a reference that is simply somewhere else is not called a missing $ or an off-by-one
    assert hint(worked, "=MAX(0,SUMPRODUCT(C7:E9,$A$1:$C$3))", 1.0, 2.0) == ""
    assert hint(worked, "=MAX(0,SUMPRODUCT(Z7:AB9,$K$6:$M$8))", 1.0, 2.0) == ""
    assert hint(worked, worked, 1.0, 2.0) == ""
    # a flipped sign, and a 0-based class read by INDEX without +1
    assert "sign is flipped" in hint("=-LN(B5)", "=LN(B5)", 0.25, -0.25)
    losses = "=-LN(INDEX(B5:F5,1,H5+1))"
    assert "INDEX counts from 1" in hint(losses, "=-LN(INDEX(B5:F5,1,H5))", 1.2, 0.7)


def test_grade_counts_cells_and_accepts_an_overflow_where_one_is_meant():
    from types import SimpleNamespace
    import numpy as np
    from xlnet.checking.exercises import grade

    values = np.array([[1.0, 2.0, np.nan], [np.nan, 5.0, np.nan]])
    sheet = SimpleNamespace(values=values, errors={2: "#NUM!", 3: "blank", 5: "#NUM!"},
                            address=lambda k: f"s!X{k}", coords=[("s", 1 + k // 3, 1 + k % 3) for k in range(6)])
    want = np.array([[1.0, 2.5, np.inf], [4.0, 5.0, 6.0]])
    formulas = {0: "=A", 1: "=B", 2: "=C", 4: "=E", 5: "=F"}
    graded = grade("t", "t", {"shape": [2, 3], "exercise": {"patterns": []}}, sheet, want,
                   {"rtol": 1e-9, "atol": 1e-9}, lambda k: formulas.get(k, ""), expected_errors=[(0, 2)])
    assert (graded.right, graded.empty, graded.cells) == (3, 1, 6)  # 1.0, 5.0 and the overflow meant at (0, 2)
    assert (graded.first_cell, graded.expected, graded.found) == ("s!X1", 2.5, "2")


def test_no_exercise_can_be_hit_by_accident(built):
    """Over every lesson's exercise set, on the books as built: no tile of an exercise is
    constant (a formula returning that constant would score it), and no input of an exercise's
    op holds the same numbers as another block before it, one of them computed (a formula reading the
    wrong one, ``EXP(logit)`` for ``EXP(logit / T)`` at T = 1, would be right by coincidence;
    two blocks of typed inputs that start equal are told apart by the perturbed recheck, which
    moves each on its own)."""
    import numpy as np

    from xlnet import lessons

    for lesson in lessons.all_lessons().values():
        book = read.read_workbook(built[lesson.NAME])
        values = {name: t.values for name, t in book.tensors.items()}
        computed = {n for n, info in book.manifest["tensors"].items() if info["role"] == "output"}
        copied_from = {e["outputs"]["out"]: e["inputs"]["x"] for e in book.manifest["ops"] if e["op"] == "copy"}

        def origin(n):  # a copy of a copy of ... a block is that block (the same quantity, not a coincidence)
            while n in copied_from:
                n = copied_from[n]
            return n
        for name in lesson.EXERCISES:
            tiles = values[name].reshape(-1, *values[name].shape[-2:]) if values[name].ndim > 2 else [values[name]]
            for k, tile in enumerate(tiles):
                finite = tile[np.isfinite(tile)]
                assert finite.size and np.ptp(finite) > 0, f"{lesson.NAME}: exercise {name} tile {k} is constant"
            at = next(k for k, e in enumerate(book.manifest["ops"]) if name in e["outputs"].values())
            entry = book.manifest["ops"][at]
            later = {o for e in book.manifest["ops"][at:] for o in e["outputs"].values()}  # not yet computed there
            for spec in entry["inputs"].values():
                source = spec.split("[")[0]
                for other, held in values.items():
                    if (other not in later and other != source and held.shape == values[source].shape and held.size > 1
                            and {other, source} & computed and origin(other) != origin(source)):
                        assert not np.array_equal(held, values[source], equal_nan=True), (
                            f"{lesson.NAME}: exercise {name} reads {source}, which holds the same numbers as {other}")


@needs_warm_libreoffice
def test_hints_for_a_drag_into_the_next_map_and_across_a_stride(books, tmp_path):
    """Dragging map 1's worked cell into map 2 reads map 1's inputs; dragging a stride-2 pooling
    cell moves its window by 1: each mistake gets its own hint."""
    conv = books["conv"]
    maps = fill(conv, tmp_path / "maps.xlsx", "conv1_out", "tiles")
    pooled = fill(fill(conv, tmp_path / "pool.xlsx", "conv1_out"), tmp_path / "pool.xlsx", "pool_out")
    graded = [{e["tensor"]: e for e in r.exercises} for r in check([maps, pooled], perturb=False)]
    first = graded[0]["conv1_out"]
    assert not first["done"] and first["first_cell"] != "" and "dragged from map 1" in first["hint"], first
    pool = graded[1]["pool_out"]
    assert graded[1]["conv1_out"]["done"] and not pool["done"], pool
    assert "window moves 2 cells" in pool["hint"], pool
