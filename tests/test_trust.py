"""What a check proves: formulas read with a real parser, formulas that read their inputs, a
lesson's manifest rebuilt, a recheck with moved inputs, and a server nobody else can answer for."""

import os
import socket
import threading
import zipfile

import numpy as np
import openpyxl
import pytest

import xlnet
from conftest import ROOT, check, edit, needs_libreoffice, statuses, tensor_cell
from xlnet.checking import perturb, pipeline, prepare as prepare_mod
from xlnet.errors import EngineError, InputError
from xlnet.lessons import provenance
from xlnet.workbook import formulacells, hidden_sheet, package, precedents, read, refs, sheetxml

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _sheet(cells, ns=MAIN):
    return (f'<?xml version="1.0"?><worksheet xmlns="{ns}" xmlns:x="urn:forged"><sheetData>'
            f'<row r="1">{cells}</row></sheetData></worksheet>').encode()


def test_formula_facts_come_from_a_real_parse_of_the_cell():
    found = sheetxml.read_sheet(_sheet(
        '<c r="A1"><!--<f>6*7</f>--><v>42</v></c>'              # a comment is not content
        '<c r="B1"><x:f>6*7</x:f><v>42</v></c>'                  # another namespace is not SpreadsheetML's
        '<c r="C1"><f>SUM(A2:A3)</f><v>1</v></c>'
        '<c r="D1"><f t="shared" ref="D1:F1" si="0">A1+1</f><v>1</v></c><c r="E1"><f t="shared" si="0"/><v>1</v></c>'
        '<c r="G1"><f t="array" ref="G1:H1">A1:B1*2</f><v>1</v></c><c r="H1"><v>2</v></c><c><v>9</v></c>'),
        "book.xlsx: sheet s", box=(1, 20), formulas=True)
    assert found.formulas == {(1, 3): "SUM(A2:A3)", (1, 4): "A1+1", (1, 5): "B1+1", (1, 7): "A1:B1*2", (1, 8): ""}
    assert found.values[(1, 1)] == 42 and found.values[(1, 9)] == 9  # a cell without r follows the one before
    strict = sheetxml.read_sheet(_sheet('<c r="A1"><f>1+1</f><v>2</v></c>', "http://purl.oclc.org/ooxml/spreadsheetml/main"),
                                 "s", formulas=True)
    assert strict.formulas == {(1, 1): "1+1"}


def test_an_array_formula_over_the_whole_grid_is_refused_before_it_is_walked():
    from xlnet.limits import Limits
    data = _sheet('<c r="A1"><f t="array" ref="A1:XFD1048576">1</f><v>1</v></c>')
    with pytest.raises(InputError, match="array formula at A1 covers 17,179,869,184 cells"):
        sheetxml.read_sheet(data, "book.xlsx: sheet s", formulas=True, limits=Limits())


def test_precedents_follow_helper_cells_names_and_sheets_but_not_strings():
    formulas = {"s": {(1, 3): "A1*2", (1, 4): "C1+'other sheet'!B2", (1, 5): 'LEN("A1")+7', (1, 6): "total*2",
                      (1, 7): 'INDIRECT("A1")', (1, 8): "SUM(A:A)", (1, 9): "I1+1"}, "other sheet": {}}
    owners = {"s": {(1, 1): 0b01}, "other sheet": {(2, 2): 0b10}}
    reach = precedents.Reach(formulas, owners, {"total": "s!$A$1"})
    assert reach.of("s", 1, 4) == 0b11  # through the helper C1, and another sheet
    assert reach.of("s", 1, 5) == 0  # "A1" is text
    assert reach.of("s", 1, 6) == 0b01  # a defined name
    assert reach.of("s", 1, 8) == 0b01  # a whole column
    assert reach.of("s", 1, 9) == 0  # a cycle reads nothing
    assert precedents.dynamic(formulas["s"][(1, 7)]) and reach.of("s", 1, 7) == 0
    deep = {"s": {(r, 2): f"B{r - 1}+1" for r in range(2, 20000)}}
    deep["s"][(20000, 2)] = "B19999"
    assert precedents.Reach(deep, {"s": {(1, 2): 1}}).of("s", 20000, 2) == 1  # a long recurrence, no recursion


def test_every_committed_lesson_book_rebuilds_to_its_own_manifest():
    for path in sorted((ROOT / "workbooks").glob("*.xlsx")):
        assert provenance.verify(xlnet.load(path).manifest, path) is None, path


def test_a_manifest_differing_from_its_lesson_is_refused_with_where(built):
    manifest = xlnet.load(built["conv"]).manifest
    manifest["ops"] = [e for e in manifest["ops"] if "conv1_out" not in e["outputs"].values()]
    with pytest.raises(InputError, match=r"not the one lesson conv builds .*manifest\.ops"):
        provenance.verify(manifest, built["conv"])
    data_book = dict(xlnet.load(built["conv"]).manifest)
    data_book["settings"] = dict(data_book["settings"], image="digit.png")
    assert "built from a data file (--image)" in provenance.verify(data_book, built["conv"])
    for settings in ({"kernel_size": 99}, {"exercises": ["no_such_block"]}):  # no way around the rebuild
        forged = dict(xlnet.load(built["conv"]).manifest)
        forged["settings"] = dict(forged["settings"], **settings)
        with pytest.raises(InputError, match="claims to be lesson conv, but its settings do not build"):
            provenance.verify(forged, built["conv"])


def test_formulas_that_compute_nothing_and_formulas_outside_blocks_are_found(built, tmp_path):
    path = tmp_path / "conv.xlsx"
    path.write_bytes(built["conv"].read_bytes())
    sheet, cell = tensor_cell(path, "conv2_pre", 0)
    edit(path, {(sheet, cell): "=6.7639", (sheet, "AZ200"): "=B2+1"})
    from xlnet import engines
    with engines.workspace() as work:
        prep = prepare_mod.prepare(path, work, "libreoffice")
        proof = pipeline.trust_file(prep)
        prep.close()
    assert proof.unread == {"conv2_pre": [0]} and proof.typed == {}
    assert len(proof.problems) == 1 and "conv!AZ200 =B2+1" in proof.problems[0] and "lost the op" in proof.problems[0]


def test_a_perturbation_moves_what_may_move_within_its_range(built):
    book = xlnet.load(built["graddesc"])
    with package.open_package(built["graddesc"]) as opened:
        formulas = formulacells.formula_cells(opened, None)
    moves = perturb.plan(book, formulas, seed=5)
    assert moves.cells and perturb.plan(book, formulas, seed=5).cells == moves.cells  # a seed says it all
    moved = {name for name in moves.tensors}
    assert "sgd_t" not in moved and "sgd_row" not in moved  # steps and rows: whole numbers by meaning
    assert "epochs" not in moved and "batch_size" not in moved  # the layout depends on them
    for name in ("adam_beta1", "adam_beta2", "mom_beta", "ema_beta", "adam_lr", "start_a", "data_x"):
        assert name in moved, name
        tensor = book.tensors[name]
        for k, at in enumerate(tensor.coords):
            old, new = tensor.values.ravel()[k], moves.cells[at]
            assert new != old and np.sign(new) == np.sign(old)
            if 0 < old < 1 and book.manifest["tensors"][name]["role"] == "hyper":
                assert 0 < new < 1


def test_set_values_writes_numbers_and_keeps_every_other_byte_of_the_sheet(built, tmp_path):
    with package.open_package(built["softmax"]) as opened:
        part = opened.sheet_parts["softmax"]
        before = opened.read(part)
    hidden_sheet.set_values(built["softmax"], tmp_path / "moved.xlsx", {part: {"H4": 1.25}})
    with package.open_package(tmp_path / "moved.xlsx") as opened:
        after = opened.read(part)
    book = read.open_values(tmp_path / "moved.xlsx")
    try:
        assert book.value("softmax", 4, 8) == 1.25
    finally:
        book.close()
    assert len(after) - len(before) < 10 and after.replace(b"1.25", b"") != before  # one cell changed
    with pytest.raises(InputError, match="ZZ999 is not written"):
        hidden_sheet.set_values(built["softmax"], tmp_path / "x.xlsx", {part: {"ZZ999": 1.0}})


@needs_libreoffice
def test_a_temperature_left_out_passes_at_t_1_and_fails_once_the_inputs_move(tmp_path):
    [path] = xlnet.build(["softmax"], out=tmp_path, temperature=1.0)
    book = openpyxl.load_workbook(path)
    for address in xlnet.load(path).tensors["scaled"].cells:
        sheet, cell = address.split("!")
        book[sheet][cell] = book[sheet][cell].value.replace("/$H$4", "")  # softmax(x), not softmax(x / T)
    book.save(path)
    [plain] = check(path)
    assert plain.passed  # T = 1: the slip does not show
    [moved] = check(path, perturb=True, seed=3)
    assert statuses(moved)["scaled"] == "fail" and not moved.passed, moved.text()
    block = next(b for b in moved.blocks if b.tensor == "scaled")
    assert "wrong once they are moved" in block.message and "seed 3" in block.message
    assert moved.perturbed["seed"] == 3 and "T" in moved.perturbed["tensors"]


@needs_libreoffice
def test_pasted_answers_are_not_done_and_the_book_is_rechecked_by_default(tmp_path):
    [exercise] = xlnet.build(["softmax"], out=tmp_path, exercise="all")
    answers = xlnet.load(ROOT / "workbooks" / "softmax.xlsx").tensors
    book, manifest = openpyxl.load_workbook(exercise), xlnet.load(exercise).manifest
    for name, info in manifest["tensors"].items():
        if "exercise" in info:
            for address, value in zip(answers[name].cells, answers[name].values.ravel()):
                sheet, cell = address.split("!")
                book[sheet][cell] = float(value)
    pasted = tmp_path / "pasted.xlsx"
    book.save(pasted)
    [report] = check(pasted)
    assert report.perturbed and not report.passed
    assert not any(e["done"] for e in report.exercises), report.text()


# --- the server ------------------------------------------------------------------------------

def test_a_client_refuses_a_socket_or_folder_of_another_user(tmp_path, monkeypatch):
    from xlnet import serve
    folder = tmp_path / "xlnet-0"
    folder.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "serve.sock"))
    sock.listen(1)
    try:
        monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 4242)
        with pytest.raises(EngineError, match="belongs to another user"):
            serve._connect(folder / "serve.sock", 1)
        monkeypatch.undo()
        os.chmod(folder / "serve.sock", 0o666)
        with pytest.raises(EngineError, match="open to other users"):
            serve._connect(folder / "serve.sock", 1)
    finally:
        sock.close()


def test_a_client_sends_nothing_to_a_server_running_as_another_user(tmp_path, monkeypatch):
    from xlnet import serve
    path = tmp_path / "serve.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(1)
    received = []

    def answer():
        try:
            received.append(listener.accept()[0].recv(100))
        except OSError:
            pass  # closed by the test

    threading.Thread(target=answer, daemon=True).start()
    real = serve._peer_uid
    monkeypatch.setattr(serve, "_peer_uid", lambda conn: real(conn) + 4242)  # as the server's uid would read
    try:
        with pytest.raises(EngineError, match="runs as another user"):
            serve.request_check(["a.xlsx"], "libreoffice", "cpu", 60, None, None, None, path=path)
    finally:
        listener.close()
    assert received in ([], [b""])  # the connection closed before a byte was sent


def test_serve_never_replaces_a_file_and_one_server_holds_a_socket(tmp_path):
    from xlnet import serve
    workbook = tmp_path / "book.xlsx"
    workbook.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="exists and is not a socket"):
        serve.Server(workbook).start()
    assert workbook.read_bytes() == b"PK not really"
    first = serve._hold_lock(tmp_path / "serve.sock.lock")
    try:
        assert first is not None and serve._hold_lock(tmp_path / "serve.sock.lock") is None
    finally:
        first.close()


def test_a_malformed_request_is_answered_as_bad_input(tmp_path):
    from xlnet import serve
    server = serve.Server(tmp_path / "s.sock")
    for request, words in (({"op": "check"}, "no 'cwd'"),
                           ({"op": "check", "cwd": str(tmp_path), "files": "a.xlsx", "engine": "libreoffice",
                             "device": "cpu", "timeout": 60}, "'files' should be list"),
                           ({"op": "check", "cwd": str(tmp_path / "gone"), "files": [], "engine": "libreoffice",
                             "device": "cpu", "timeout": 60}, "does not exist")):
        reply = server._handle(request)
        assert reply["exit"] == 2 and words in reply["error"], reply


def test_a_zipped_sheet_with_a_cell_at_the_last_cell_reads_in_one_pass(built, tmp_path):
    target = tmp_path / "far.xlsx"
    with package.open_package(built["conv"]) as opened:
        part = opened.sheet_parts["conv"]
    with zipfile.ZipFile(built["conv"]) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == part:
                data = data.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
            zout.writestr(item, data)
    book = xlnet.load(target)
    assert book.tensors["image"].values.shape == (1, 8, 8)
    assert refs.a1(1048576, 16384) == "XFD1048576"


def test_opening_a_book_with_a_cell_at_the_last_cell_stays_small(built, tmp_path):
    import subprocess
    import sys
    far = tmp_path / "far.xlsx"
    with zipfile.ZipFile(built["conv"]) as zin, zipfile.ZipFile(far, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet2.xml":  # conv (sheet1 is the start sheet)
                data = data.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>7</v></c></row></sheetData>')
            zout.writestr(item, data)
    code = ("import re, sys, xlnet\n"
            "book = xlnet.open(sys.argv[1], engine='cached')\n"
            "assert book.values('conv!XFD1048576') == 7\n"
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n")
    result = subprocess.run([sys.executable, "-c", code, str(far)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) // 1024 < 800, f"peak {int(result.stdout) // 1024} MB"  # was 4 GB, rows padded out
