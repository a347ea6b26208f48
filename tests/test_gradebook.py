"""A teacher's gradebook: points per exercise, partial credit, the states told apart, CSV and
Gradescope exports, a file that cannot be read as its own row while the others are graded."""

import csv
import io
import json
import math
import subprocess
import sys

import pytest

import xlnet
from xlnet.checking.grading import Graded
from xlnet.report import gradebook

from conftest import check, needs_libreoffice, needs_warm_libreoffice
from test_exercises import fill


@pytest.fixture(scope="module")
def handed_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("handed-out")
    return xlnet.build(["conv"], out=out, exercise="all", exercise_points="conv1_out=3,probs=2")[0]


def test_points_are_recorded_and_refused_when_wrong(handed_out, tmp_path):
    info = xlnet.load(handed_out).manifest["tensors"]
    assert [info[n]["exercise"]["points"] for n in ("conv1_out", "pool_out", "probs")] == [3.0, 1.0, 2.0]
    for bad in ("nope=2", "conv1_out=0", "conv1_out=x", "conv1_out=1e9"):
        with pytest.raises(xlnet.InputError, match="exercise_points"):
            xlnet.build(["conv"], out=tmp_path, exercise="all", exercise_points=bad)
    with pytest.raises(xlnet.InputError, match="exercise"):
        xlnet.build(["conv"], out=tmp_path, exercise_points=2)


def test_states_and_partial_credit():
    base = {"tensor": "t", "title": "t", "cells": 10, "worked": 2, "points": 4.0, "first_cell": "A1"}
    cases = [
        (dict(right=10, empty=0, done=True), "done", 4.0),
        (dict(right=2, empty=8, done=False), "not started", 0.0),
        (dict(right=6, empty=4, done=False), "incomplete", 2.0),  # 4 of 8 learner cells, none wrong
        (dict(right=6, empty=0, done=False), "wrong", 2.0),
        (dict(right=0, empty=6, done=False, found="not graded yet"), "incomplete", 0.0),
        (dict(right=1, empty=0, done=False), "wrong", 0.0),  # a broken worked cell earns nothing back
    ]
    for extra, state, score in cases:
        e = dict(base, **extra)
        assert gradebook.exercise_state(e) == state, extra
        assert gradebook.exercise_score(e) == score, extra


@needs_warm_libreoffice
def test_csv_and_gradescope_of_a_class(handed_out, tmp_path):
    alice = fill(handed_out, tmp_path / "alice.xlsx", "conv1_out")              # conv1_out done
    bob = fill(handed_out, tmp_path / "bob.xlsx", "conv1_out", "relu")           # conv1_out wrong
    carol = fill(handed_out, tmp_path / "carol.xlsx", "conv1_out", upto=30)      # half done
    reports = check([alice, bob, carol, handed_out], reference=handed_out)
    graded = [Graded(str(p), [r]) for p, r in zip([alice, bob, carol, handed_out], reports)]
    graded.append(Graded(str(tmp_path / "dave.xlsx"), error="dave.xlsx: not a workbook"))
    rows = {r["file"]: r for r in csv.DictReader(io.StringIO(gradebook.to_csv(graded)))}
    a, b, c, empty, dave = (rows[str(p)] for p in (alice, bob, carol, handed_out, tmp_path / "dave.xlsx"))
    assert a["max_score"] == "6" and a["conv1_out"] == "3" and a["conv1_out state"] == "done"
    assert float(a["score"]) == 3 and a["pool_out state"] == "not started"
    assert b["conv1_out state"] == "wrong" and 0 < float(b["conv1_out"]) < 3  # the cells a clamp gets right
    assert c["conv1_out state"] == "incomplete" and 0 < float(c["conv1_out"]) < 3
    assert empty["score"] == "0" and empty["result"] == "not started"
    assert empty["to fix first"].startswith("exercise conv1_out") and "conv!C17" in empty["to fix first"]
    assert dave["result"] == "error" and "not a workbook" in dave["to fix first"] and dave["score"] == "0"

    results = json.loads(gradebook.to_gradescope(graded[:1]))
    assert results["score"] == 3 and len(results["tests"]) == 3
    first = results["tests"][0]
    assert first["max_score"] == 3 and first["status"] == "passed" and first["output"].startswith("done")
    assert results["tests"][1]["status"] == "failed" and "first to fix" in results["tests"][1]["output"]


@needs_libreoffice
def test_check_format_csv_grades_the_others_when_one_file_is_broken(handed_out, tmp_path):
    alice = fill(handed_out, tmp_path / "alice.xlsx", "conv1_out")
    broken = tmp_path / "bob.xlsx"
    broken.write_bytes(b"not a zip")
    for jobs in ([], ["--jobs", "2"]):
        run = subprocess.run([sys.executable, "-m", "xlnet", "check", str(alice), str(broken), "--format", "csv",
                              "--reference", str(handed_out)] + jobs, capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 2, run.stderr
        rows = list(csv.DictReader(io.StringIO(run.stdout)))
        assert [r["file"] for r in rows] == [str(alice), str(broken)], run.stdout
        assert rows[0]["conv1_out state"] == "done" and rows[1]["result"] == "error"
    run = subprocess.run([sys.executable, "-m", "xlnet", "check", str(broken), "--format", "gradescope"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2 and json.loads(run.stdout)["tests"][0]["status"] == "failed"


def test_points_read_from_a_book_are_validated(handed_out):
    """A manifest giving an exercise no points, negative points or a billion is refused before a
    gradebook uses them."""
    from xlnet import manifest as manifest_mod

    good = xlnet.load(handed_out).manifest
    manifest_mod.validate(good, where="book")
    for bad in (0, -3, 1e9, "3"):
        forged = json.loads(json.dumps(good))
        forged["tensors"]["conv1_out"]["exercise"]["points"] = bad
        with pytest.raises(xlnet.ManifestError, match="points"):
            manifest_mod.validate(forged, where="book")


def test_a_report_shows_in_a_notebook_as_an_escaped_table():
    from xlnet.report import BlockResult, Report

    failing = BlockResult(title="conv <relu>", op="conv2d", tensor="t", status="fail", max_abs=1.5, max_rel=math.inf,
                          worst_cell="conv!B3", message="holds 1, torch 2.5", e2e_pass=False, e2e_max_abs=1.5)
    passing = BlockResult(title="pool", op="max_pool2d", tensor="p", status="pass", max_abs=0.0, max_rel=0.0,
                          worst_cell="", message="", e2e_pass=True, e2e_max_abs=0.0)
    html = Report(path="a&b.xlsx", engine="libreoffice", device="cpu", blocks=[failing, passing],
                  notes=["x < y"])._repr_html_()
    assert "<b>a&amp;b.xlsx</b>" in html and "MISMATCH" in html and "note: x &lt; y" in html
    assert html.count("<tr") == 3 and "conv &lt;relu&gt;" in html and "<relu>" not in html
    assert '<tr style="background:#f8d0d0"><td>conv &lt;relu&gt;</td>' in html  # a failing row stands out
    assert "<td>conv!B3</td><td>holds 1, torch 2.5</td>" in html
