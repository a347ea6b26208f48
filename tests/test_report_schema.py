"""The JSON of `xlnet check --json` against its published, versioned JSON Schema: a passing
book, an exercise book with empty cells (infinite differences), a class with a file that could
not be checked (one record shape for all), and the round trip `xlnet serve` makes."""

import json
import math

import jsonschema
import pytest

import xlnet
from xlnet.cli import main
from xlnet.report import Report
from xlnet.report.schema import SCHEMA, VERSION
from conftest import check, needs_libreoffice


def _validate(records):
    jsonschema.Draft202012Validator(SCHEMA).validate(records)
    assert all(r["version"] == VERSION for r in records)


def test_the_schema_is_a_json_schema_and_list_prints_it(capsys):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert main(["list", "--report-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA


@needs_libreoffice
def test_check_json_validates_for_a_passing_and_an_unfinished_exercise_book(built, tmp_path, capsys):
    [exercise] = xlnet.build(["softmax"], out=tmp_path, exercise="all")
    assert main(["check", str(built["conv"]), str(exercise), "--engine", "libreoffice", "--json"]) == 1
    records = json.loads(capsys.readouterr().out)
    _validate(records)
    assert [r["passed"] for r in records] == [True, False] and records[0]["error"] is None
    infinite = [b for b in records[1]["blocks"] if b["infinite"]]
    assert infinite and all(b["max_abs"] is None for b in infinite if "max_abs" in b["infinite"])
    assert all(isinstance(e["found"], str) for e in records[1]["exercises"])


@needs_libreoffice
def test_jobs_json_gives_one_record_shape_for_a_file_that_could_not_be_checked(built, tmp_path, capsys):
    bad = tmp_path / "student.xlsx"
    bad.write_text("not a workbook")
    assert main(["check", str(built["softmax"]), str(bad), "--engine", "libreoffice", "--jobs", "2", "--json"]) == 2
    records = json.loads(capsys.readouterr().out)
    _validate(records)
    assert set(records[0]) == set(records[1])
    assert records[1]["error"] and "not a workbook" in records[1]["error"] and records[1]["blocks"] == []


@needs_libreoffice
def test_the_round_trip_keeps_infinite_and_missing_differences(tmp_path):
    [exercise] = xlnet.build(["softmax"], out=tmp_path, exercise="all")
    [report] = check(exercise, engine="libreoffice")
    data = report.to_dict()
    _validate([json.loads(json.dumps(data, allow_nan=False))])  # strict JSON: no NaN, no Infinity
    again = Report.from_dict(data)
    for before, after in zip(report.blocks, again.blocks):
        for key in ("max_abs", "max_rel", "e2e_max_abs"):
            x, y = getattr(before, key), getattr(after, key)
            assert (math.isnan(x) and math.isnan(y)) or x == y, (before.tensor, key, x, y)
    assert again.text() == report.text()


@pytest.mark.parametrize("found, value", [("0.5", 0.5), ("empty", None), ("#NUM!", None), ("inf", None)])
def test_found_value_is_the_number_a_cell_holds(found, value):
    from xlnet.report import ExerciseResult
    data = ExerciseResult(tensor="t", title="t", cells=2, right=1, empty=0, found=found).to_dict()
    assert data["found_value"] == value and data["found"] == found
