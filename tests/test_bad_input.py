"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing half-written."""

import zipfile

import openpyxl
import pytest

from xlnet.cli import main
from conftest import require_engine, tensor_cell


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xlnet: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_not_a_workbook(tmp_path, capsys):
    path = tmp_path / "notes.xlsx"
    path.write_text("hello")
    assert_one_line_error(*run(capsys, "check", str(path), "--engine", "cached")[::2], "notes.xlsx", "not a workbook")


def test_missing_file(tmp_path, capsys):
    assert_one_line_error(*run(capsys, "check", str(tmp_path / "nope.xlsx"))[::2], "no such file")


def test_truncated_workbook(copy_of, capsys):
    path = copy_of("conv")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "check", str(path), "--engine", "cached")
    assert_one_line_error(code, err, "conv.xlsx")


def test_xml_bomb_is_refused(copy_of, tmp_path, capsys):
    src = copy_of("conv")
    bomb = tmp_path / "bomb.xlsx"
    payload = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
               '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
               '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol2;</t></si></sst>')
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/sharedStrings.xml":
                data = payload.encode()
            zout.writestr(item, data)
    code, _, err = run(capsys, "check", str(bomb), "--engine", "cached")
    assert_one_line_error(code, err, "bomb.xlsx")


def test_missing_manifest_sheet(copy_of, capsys):
    path = copy_of("conv")
    book = openpyxl.load_workbook(path)
    del book["_xlnet"]
    book.save(path)
    assert_one_line_error(*run(capsys, "check", str(path))[::2], "no xlnet manifest")


def test_a_plain_workbook_is_not_an_xlnet_workbook(tmp_path, capsys):
    path = tmp_path / "plain.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = 3
    book.save(path)
    assert_one_line_error(*run(capsys, "check", str(path))[::2], "plain.xlsx", "no xlnet manifest")


def test_missing_defined_name(copy_of, capsys):
    path = copy_of("conv")
    book = openpyxl.load_workbook(path)
    del book.defined_names["conv1_w_1_0"]
    book.save(path)
    assert_one_line_error(*run(capsys, "check", str(path))[::2], "conv1_w_1_0", "missing")


def test_wrong_shape(copy_of, capsys):
    path = copy_of("conv")
    book = openpyxl.load_workbook(path)
    book.defined_names["dense_b"].attr_text = "conv!$A$1:$A$4"
    book.save(path)
    assert_one_line_error(*run(capsys, "check", str(path))[::2], "dense_b", "expected 10x1")


def test_error_value_in_an_input_cell(copy_of, capsys):
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "conv1_w", 2)
    book = openpyxl.load_workbook(path)
    book[sheet][cell] = "=1/0"
    book.save(path)
    # the recalculated sheet holds #DIV/0! in an input: the check cannot proceed
    require_engine("libreoffice")
    assert_one_line_error(*run(capsys, "check", str(path))[::2], f"{sheet}!{cell}", "#DIV/0!", "expected a number")


def test_text_in_an_input_cell(copy_of, capsys):
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "image", 3)
    book = openpyxl.load_workbook(path)
    book[sheet][cell] = "dark"
    book.save(path)
    assert_one_line_error(*run(capsys, "check", str(path), "--engine", "cached")[::2], f"{sheet}!{cell}", "text")


@pytest.mark.parametrize("args, words", [
    (["--image", "missing.png"], ["missing.png", "no such image"]),
    (["--kernel-size", "0"], ["--kernel-size 0"]),
    (["--dropout-p", "1.5"], ["--dropout-p"]),
    (["--kernel-size", "9"], ["leaves nothing"]),
    (["--digit", "5000"], ["--digit 5000"]),
])
def test_bad_build_options_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    code, _, err = run(capsys, "build", "conv", "--out", str(out), *args)
    assert_one_line_error(code, err, *words)
    assert not out.exists() or not any(out.iterdir())


def test_a_failed_build_leaves_the_previous_workbook_untouched(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", "conv", "--out", str(out)]) == 0
    before = (out / "conv.xlsx").read_bytes()
    code, _, err = run(capsys, "build", "conv", "--out", str(out), "--image", str(tmp_path / "bad.csv"))
    assert code == 2
    assert (out / "conv.xlsx").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["conv.xlsx"]


def test_bad_image_content(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,x\n3,4,5\n")
    code, _, err = run(capsys, "build", "conv", "--out", str(tmp_path / "o"), "--image", str(bad))
    assert_one_line_error(code, err, "bad.csv", "could not read")


def test_unknown_lesson(tmp_path, capsys):
    assert_one_line_error(*run(capsys, "build", "nosuch", "--out", str(tmp_path))[::2], "unknown lesson 'nosuch'")
