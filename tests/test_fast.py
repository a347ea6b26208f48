"""Fast checks: the one-pass reader, a warm LibreOffice, `xlnet serve`, `xlnet watch`, `--jobs`
and the pytest plugin's warm engine, each run the way a user runs it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import handmade
from conftest import break_formula, needs_warm_libreoffice, tensor_cell
from xlnet.workbook import read, refs
from xlnet.engines import warm
from xlnet.errors import InputError


def _leftover(marker):
    """Processes whose command line mentions ``marker`` (a private folder of the test)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


def _env(tmp_path, **extra):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp), XLNET_SOCKET=str(tmp_path / "s.sock"), **extra)


def _xlnet(*args, env, timeout=600, cwd=None):
    return subprocess.run([sys.executable, "-m", "xlnet", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


# --- the one-pass reader -------------------------------------------------------------------

def _sheet_xml(cells):
    return ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main"><sheetData><row r="1">{cells}</row></sheetData></worksheet>')


def _with_sheet1(src, dst, xml):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = xml.encode()
            zout.writestr(item, data)
    return dst


def test_error_values_keep_their_codes_and_cells(built, tmp_path):
    # the way another program writes errors: attributes in any order, quotes of either kind
    cells = ('<c r="A1" t="e"><f>1/0</f><v>#DIV/0!</v></c><c t=\'e\' s="1" r="B1"><v>#NUM!</v></c>'
             '<c r="C1"><v>3</v></c><c r="D1" t="e"><v>#NAME?</v></c>')
    path = _with_sheet1(built["conv"], tmp_path / "errors.xlsx", _sheet_xml(cells))
    book = read.open_values(path)
    try:
        sheet = book.sheetnames[0]
        cells = book.cells(sheet, 1, 4)
        assert cells.values == {(1, 3): 3.0}
        assert cells.errors == {(1, 1): "#DIV/0!", (1, 2): "#NUM!", (1, 4): "#NAME?"}
        assert [book.value(sheet, 1, c) for c in range(1, 5)] == ["#DIV/0!", "#NUM!", 3.0, "#NAME?"]
    finally:
        book.close()


def test_a_document_type_in_a_sheet_is_refused_before_it_is_parsed(built, tmp_path):
    xml = ('<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
           + _sheet_xml('<c r="A1" t="inlineStr"><is><t>&b;</t></is></c>').split("?>", 1)[1])
    path = _with_sheet1(built["conv"], tmp_path / "bomb.xlsx", xml)
    with pytest.raises(InputError, match="XML entities"):
        read.open_values(path)


def test_a_cell_at_the_last_cell_of_the_grid_costs_one_cell(built, tmp_path):
    # a grid padded to XFD1048576 would be 17 billion cells: the sheet is read sparsely
    path = _with_sheet1(built["conv"], tmp_path / "far.xlsx",
                        _sheet_xml('<c r="A1"><v>1</v></c><c r="XFD1048576"><v>2</v></c>'))
    book = read.open_values(path)
    try:
        sheet = book.sheetnames[0]
        assert book.cells(sheet, 3, 3).values == {(1, 1): 1.0}
        assert book.value(sheet, 1048576, 16384) == 2.0
    finally:
        book.close()


@pytest.mark.parametrize("given", ["argument", "environment"])
def test_a_sheet_of_more_cells_than_the_cell_limit_is_refused(built, tmp_path, monkeypatch, given):
    from xlnet import limits
    row = "".join(f'<c r="{refs.a1(1, c)}"><v>{c}</v></c>' for c in range(1, 1201))
    path = _with_sheet1(built["conv"], tmp_path / "wide.xlsx", _sheet_xml(row))
    if given == "environment":
        monkeypatch.setenv("XLNET_MAX_CELLS", "1000")
    book = read.open_values(path, limits.Limits(cells=1000) if given == "argument" else None)
    try:
        with pytest.raises(InputError, match="1,001 cells"):
            book.cells(book.sheetnames[0], 1, 2000)
    finally:
        book.close()


# --- a warm LibreOffice --------------------------------------------------------------------

@needs_warm_libreoffice
def test_a_warm_libreoffice_recalculates_book_after_book_and_stops_clean(copy_of, tmp_path):
    import xlnet
    book = copy_of("conv")
    broken = tmp_path / "broken.xlsx"
    shutil.copyfile(book, broken)
    break_formula(broken, "conv1_out", 0, "MAX(0,", "MIN(0,")
    not_a_book = tmp_path / "text.xlsx"
    not_a_book.write_bytes(b"PK\x03\x04 not really a zip")
    with warm.WarmLibreOffice() as engine:
        marker = str(engine._folder)
        assert _leftover(marker)  # LibreOffice is running, under the private profile
        first = xlnet.check([book], warm=engine)[0]
        assert first.passed and first.sentinel == "ok" and first.started == "warm"
        second = xlnet.check([broken], warm=engine)[0]
        sheet, cell = tensor_cell(broken, "conv1_out", 0)
        assert not second.passed and f"{sheet}!{cell}" in [b.worst_cell for b in second.blocks]
        with pytest.raises(InputError):
            xlnet.check([not_a_book], warm=engine)
        assert xlnet.check([book], warm=engine)[0].passed  # still serving after a bad file
        assert engine.recalculated == 3
    assert not _leftover(marker)
    assert not Path(marker).exists()


# --- xlnet serve ---------------------------------------------------------------------------

def _start_server(env):
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline()
    assert "listening on" in line, line + proc.stderr.read()
    return proc, line


@needs_warm_libreoffice
def test_serve_keeps_libreoffice_warm_for_checks_and_stops_on_ctrl_c(copy_of, tmp_path):
    env = _env(tmp_path)
    book = copy_of("conv")
    proc, line = _start_server(env)
    try:
        assert str(tmp_path / "s.sock") in line and line.count("\n") == 1
        again = _xlnet("serve", env=env)
        assert again.returncode == 2 and "already running" in again.stderr
        warm_run = _xlnet("check", book.name, env=env, cwd=book.parent)
        assert warm_run.returncode == 0, warm_run.stderr
        assert warm_run.stdout.startswith(f"{book.name}  (engine libreoffice, warm: xlnet serve,")
        cold = _xlnet("check", book, "--cold", env=env)
        assert cold.returncode == 0 and "cold start" in cold.stdout.splitlines()[0]
        missing = _xlnet("check", tmp_path / "missing.xlsx", env=env)
        assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
        broken = tmp_path / "broken.xlsx"
        shutil.copyfile(book, broken)
        break_formula(broken, "conv1_out", 0, "MAX(0,", "MIN(0,")
        mismatch = _xlnet("check", broken, "--json", env=env)
        assert mismatch.returncode == 1
        assert json.loads(mismatch.stdout)[0]["started"] == "warm: xlnet serve"
        assert _leftover(str(tmp_path / "tmp"))  # the warm LibreOffice, under the server's TMPDIR
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
    assert not (tmp_path / "s.sock").exists()
    deadline = time.monotonic() + 10
    while _leftover(str(tmp_path / "tmp")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _leftover(str(tmp_path / "tmp"))
    stale = _xlnet("check", book, env=env)  # the socket is gone: a cold start, said so
    assert stale.returncode == 0 and "cold start" in stale.stdout.splitlines()[0]


# --- xlnet watch ---------------------------------------------------------------------------

@needs_warm_libreoffice
def test_watch_rechecks_each_time_the_workbook_is_saved(copy_of, tmp_path):
    env = _env(tmp_path)
    book = copy_of("conv")
    broken = tmp_path / "broken.xlsx"
    shutil.copyfile(book, broken)
    break_formula(broken, "conv1_out", 0, "MAX(0,", "MIN(0,")
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", "watch", str(book), "--count", "1", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        header = proc.stdout.readline()
        assert "each time it is saved" in header and "warm" in header, header + proc.stderr.read()
        first = proc.stdout.readline()
        assert "conv.xlsx:" in first and first.rstrip().split("  (")[0].endswith("OK"), first
        time.sleep(0.3)
        tmp = book.with_suffix(".saving")
        shutil.copyfile(broken, tmp)
        os.replace(tmp, book)  # saved the way spreadsheet programs save: a new file renamed over
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    second = out.splitlines()
    assert "MISMATCH" in second[0], out
    sheet, cell = tensor_cell(broken, "conv1_out", 0)
    assert any(line.strip().startswith("FAIL") and f"{sheet}!{cell}" in line for line in second[1:]), out


def test_watch_refuses_a_missing_file_in_one_line(tmp_path):
    result = _xlnet("watch", tmp_path / "nope.xlsx", env=_env(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such file" in result.stderr


# --- many workbooks at once -----------------------------------------------------------------

@needs_warm_libreoffice
def test_jobs_grade_a_class_with_a_table_and_json(copy_of, tmp_path):
    env = _env(tmp_path)
    good = copy_of("softmax")
    folder = tmp_path / "class"
    folder.mkdir()
    names = []
    for i in range(3):
        target = folder / f"student{i}.xlsx"
        shutil.copyfile(good, target)
        names.append(target)
    break_formula(names[1], "probs", 0, "/", "*0.5/")
    (folder / "student3.xlsx").write_text("not a workbook")
    names.append(folder / "student3.xlsx")
    result = _xlnet("check", *names, "--jobs", "2", env=env)
    assert result.returncode == 2, result.stderr  # a file could not be checked
    table = result.stdout[result.stdout.index("file "):].splitlines()
    rows = {line.split()[0]: line for line in table[1:-1]}
    assert set(rows) == {str(n) for n in names}
    assert " OK" in rows[str(names[0])] and " OK" in rows[str(names[2])]
    sheet, cell = tensor_cell(names[1], "probs", 0)
    assert "MISMATCH" in rows[str(names[1])] and f"{sheet}!{cell}" in rows[str(names[1])]
    assert "ERROR" in rows[str(names[3])] and "not a workbook" in rows[str(names[3])]
    assert table[-1] == "4 workbooks: 2 pass, 1 mismatch, 1 could not be checked"
    as_json = json.loads(_xlnet("check", *names, "--jobs", "2", "--json", env=env).stdout)
    assert [r["passed"] for r in as_json] == [True, False, True, False]
    assert "not a workbook" in as_json[3]["error"]
    assert not _leftover(str(tmp_path / "tmp"))


def test_jobs_out_of_range_is_one_line(tmp_path):
    result = _xlnet("check", tmp_path / "a.xlsx", "--jobs", "0", env=_env(tmp_path))
    assert result.returncode == 2 and "--jobs should be a whole number from 1 to 64" in result.stderr


# --- the pytest plugin keeps one engine warm --------------------------------------------------

PLUGIN_TESTS = '''
def test_first(xlnet_open):
    assert xlnet_open("a/conv.xlsx")["'my conv'!B2:I9"].shape == (8, 8)


def test_second(xlnet_open, request):
    xlnet_open("b/xent.xlsx")
    session = request.config._xlnet_session
    assert session._warm is not None and session._warm.recalculated == 2
'''


@needs_warm_libreoffice
def test_the_plugin_keeps_one_warm_libreoffice_for_the_session(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    handmade.conv_book(tmp_path / "a")
    handmade.cross_entropy_book(tmp_path / "b")
    (tmp_path / "test_books.py").write_text(PLUGIN_TESTS)
    env = _env(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_books.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    assert not _leftover(str(tmp_path / "tmp"))  # stopped with the session


# --- the manifest schema, compiled -----------------------------------------------------------

def _mutations(manifest):
    import copy
    name = next(iter(manifest["tensors"]))
    changes = [
        lambda m: m["tensors"][name]["shape"].__setitem__(0, -3),
        lambda m: m["tensors"][name].__setitem__("role", "weights"),
        lambda m: m["tensors"][name].__setitem__("tiles", "A1"),
        lambda m: m["tensors"].__setitem__("9bad name", m["tensors"][name]),
        lambda m: m["ops"][0].__setitem__("tol", {"rtol": -1}),
        lambda m: m["ops"][0].__setitem__("tol", {"rtol": 1, "extra": 2}),
        lambda m: m["ops"][0]["attrs"].__setitem__("x" * 65, 1),
        lambda m: m["ops"][0].__setitem__("outputs", {}),
        lambda m: m.__setitem__("version", "1"),
        lambda m: m.pop("ops"),
        lambda m: m["tensors"][name].__setitem__("shape", [1] * 7),
        lambda m: m["tensors"][name].__setitem__("caption", "x" * 2001),
        lambda m: m.__setitem__("charts", [{"name": "c", "kind": "pie", "series": [{"tensor": name}]}]),
        lambda m: None,
    ]
    for change in changes:
        changed = copy.deepcopy(manifest)
        change(changed)
        yield changed


def test_the_compiled_schema_agrees_with_jsonschema(built):
    import xlnet
    from xlnet.manifest import schema
    for lesson in ("conv", "graddesc"):
        for manifest in _mutations(xlnet.load(built[lesson]).manifest):
            assert schema._valid_fast(manifest) == schema._validator().is_valid(manifest), manifest.get("version")
