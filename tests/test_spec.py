"""Checking spreadsheets people made by hand, block by block, from a TOML spec; annotating a
copy with the spec; reading any workbook as tensors with ``xlnet.open``."""

import hashlib
import zipfile

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

import xlnet
from xlnet import cli
from xlnet.checking import spec as spec_mod
from xlnet.workbook.survey import survey
from xlnet.errors import InputError

import handmade
from conftest import check, needs_gnumeric, needs_libreoffice


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blocks(report):
    return {b.title: b for b in report.blocks}


@needs_libreoffice
@pytest.mark.parametrize("make", [handmade.conv_book, handmade.cross_entropy_book, handmade.collab_book,
                                  handmade.backprop_book])
def test_hand_made_books_pass_block_by_block_and_stay_untouched(tmp_path, make):
    path, spec = make(tmp_path)
    before = digest(path)
    [report] = check(path)  # the spec beside the workbook is found
    assert report.passed, report.text()
    expected = len(spec_mod.load(spec, survey(path).sheets).manifest["ops"])
    assert len(report.blocks) == expected >= 2
    assert all(b.status == "pass" for b in report.blocks)
    assert digest(path) == before
    assert report.spec == str(spec)


@needs_gnumeric
def test_gnumeric_passes_the_array_formulas_too(tmp_path):
    path, _ = handmade.conv_book(tmp_path)
    [report] = check(path, engine="gnumeric")
    assert report.passed and len(report.blocks) == 2, report.text()


@needs_libreoffice
def test_log_for_ln_fails_exactly_the_cross_entropy_blocks(tmp_path):
    path, _ = handmade.cross_entropy_book(tmp_path, log="LOG")
    [report] = check(path)
    found = blocks(report)
    assert found["softmax -> xent!A14:E17"].status == "pass"
    per_row = found["cross-entropy per row"]
    assert per_row.status == "fail" and per_row.worst_cell.startswith("xent!A2")
    assert "torch" in per_row.message
    assert not report.passed


@needs_libreoffice
def test_a_missing_relu_is_named_by_its_cell(tmp_path):
    path, _ = handmade.conv_book(tmp_path, relu_cell="D13")
    [report] = check(path)
    failed = [b for b in report.blocks if b.status == "fail"]
    assert [b.title for b in failed] == ["conv + ReLU"], report.text()
    assert failed[0].worst_cell == "'my conv'!D13"


@needs_libreoffice
def test_adam_step_is_checked_against_torch_optim(tmp_path):
    path, spec = handmade.backprop_book(tmp_path, optimizer="adam")
    [report] = check(path)
    assert blocks(report)["one adam step"].status == "pass", report.text()
    wb = openpyxl.load_workbook(path)
    wb["backprop"]["B18"] = wb["backprop"]["B18"].value.replace("$B$15", "$B$15*2", 1)  # twice the lr
    wb.save(path)
    [report] = check(path)
    step = blocks(report)["one adam step"]
    assert step.status == "fail" and step.worst_cell == "backprop!B18"


@needs_libreoffice
def test_random_cells_are_reported_and_their_blocks_still_checked(tmp_path):
    path, _ = handmade.backprop_book(tmp_path, random_data=True)
    [report] = check(path)
    assert report.passed, report.text()
    assert any("non-deterministic: 6 cell(s)" in n and "backprop!A2" in n for n in report.notes)
    assert "note: non-deterministic" in report.text()


@needs_libreoffice
def test_functions_libreoffice_lacks_give_one_clear_line(tmp_path, capsys):
    path, spec = handmade.conv_book(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["my conv"]["L6"] = "=_xlfn.NOSUCHFUNC(1)"  # the bias: an input of the conv block
    wb.save(path)
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{spec}:10:" in err and "'my conv'!L6 holds #NAME?" in err and "NOSUCHFUNC" in err


@needs_libreoffice
def test_name_errors_in_an_output_fail_its_block_with_a_note(tmp_path):
    path, _ = handmade.conv_book(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["my conv"]["C21"] = "=_xlfn.NOSUCHFUNC(C14:D15)"
    wb.save(path)
    [report] = check(path)
    pool = blocks(report)["max-pool"]
    assert pool.status == "fail" and pool.worst_cell == "'my conv'!C21" and "#NAME?" in pool.message
    assert any("#NAME? in 1 cell(s) ('my conv'!C21)" in n and "NOSUCHFUNC" in n for n in report.notes)


@needs_libreoffice
def test_pivot_caches_that_openpyxl_refuses_do_not_surface(tmp_path):
    path, _ = handmade.collab_book(tmp_path)
    handmade.with_pivot_cache(path)
    with pytest.raises(Exception):
        openpyxl.load_workbook(path)  # the full reader meets the damaged cache
    [report] = check(path)
    assert report.passed and len(report.blocks) == 3, report.text()


@needs_libreoffice
def test_xlsm_workbooks_are_checked_and_annotated_with_their_vba_kept(tmp_path):
    path, _ = handmade.conv_book(tmp_path)
    xlsm, spec = handmade.as_xlsm(path)
    before = digest(xlsm)
    [report] = check(xlsm, spec=spec)
    assert report.passed and len(report.blocks) == 2, report.text()
    out = xlnet.annotate(xlsm, spec, tmp_path / "out" / "annotated.xlsm")
    with zipfile.ZipFile(xlsm) as a, zipfile.ZipFile(out) as b:
        assert a.read("xl/vbaProject.bin") == b.read("xl/vbaProject.bin")
        assert "macroEnabled" in b.read("[Content_Types].xml").decode()
    assert digest(xlsm) == before


@needs_libreoffice
def test_legacy_xls_is_converted_by_the_engine(tmp_path):
    path, spec = handmade.cross_entropy_book(tmp_path)
    xls = handmade.as_xls(path)
    path.unlink()
    [report] = check(xls)
    assert report.passed and len(report.blocks) == 3, report.text()


@needs_libreoffice
def test_an_ods_spreadsheet_is_converted_and_checked_by_its_spec(tmp_path):
    """What LibreOffice users save: an .ods beside its spec, found in a folder too."""
    path, spec = handmade.cross_entropy_book(tmp_path)
    ods = handmade.as_xls(path, "ods")
    path.unlink()
    [report] = check(tmp_path)  # the folder: the .ods is its workbook
    assert report.path == str(ods) and report.passed and len(report.blocks) == 3, report.text()
    book = xlnet.open(ods, engine="libreoffice")
    assert book.sheetnames == ["xent"] and book.recalculated


@needs_libreoffice
def test_annotate_writes_the_spec_into_a_copy_that_checks_without_it(tmp_path, capsys):
    path, spec = handmade.collab_book(tmp_path)
    before = digest(path)
    out = tmp_path / "graded" / "collab.xlsx"
    assert cli.main(["annotate", str(path), "--spec", str(spec), "-o", str(out)]) == 0
    assert digest(path) == before
    assert not out.with_name("collab.xlnet.toml").exists()
    assert cli.main(["check", str(out), "--json"]) == 0
    assert '"passed": true' in capsys.readouterr().out
    book = openpyxl.load_workbook(out)
    assert book["it's collab"]["E5"].value.text == "=MMULT(A5:C8,E1:I3)"  # the array formula kept
    assert book["notes"].sheet_state == "hidden"


def test_annotate_refuses_to_overwrite_its_source(tmp_path, capsys):
    path, spec = handmade.conv_book(tmp_path)
    assert cli.main(["annotate", str(path), "--spec", str(spec), "-o", str(path)]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_a_workbook_with_neither_manifest_nor_spec_says_what_to_write(tmp_path, capsys):
    path, spec = handmade.conv_book(tmp_path)
    spec.unlink()
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no xlnet manifest and no spec" in err and "conv.xlnet.toml" in err


BAD_SPECS = [
    ("unknown op", 'op = "conv2d"', 'op = "convolve"', ":7: block 1: unknown op 'convolve'"),
    ("range past the sheet", 'out = "\'my conv\'!B12:G17"', 'out = "\'my conv\'!B12:Z99"', ":12: block 1: out = "),
    ("shape mismatch", 'out = "\'my conv\'!B12:G17"', 'out = "\'my conv\'!B12:F17"', "shape mismatch: op conv2d makes [1, 6, 6]"),
    ("missing name", 'x = "image"', 'x = "picture"', ":8: block 1: x = 'picture': the workbook has no defined name"),
    ("missing sheet", "bias = \"'my conv'!L6\"", 'bias = "conv!L6"', ":10: block 1: bias = 'conv!L6': the workbook has no sheet 'conv'"),
    ("malformed toml", 'relu = true', 'relu = = true', ":11: not valid TOML"),
    ("wrong attribute type", 'kernel_size = 2', 'kernel_size = "two"', "attribute 'kernel_size' should be of type int"),
    ("unknown key", 'relu = true', 'relu = true\ndilation = 2', ":12: block 1: op conv2d has no input or attribute 'dilation'"),
    ("loose tolerance", 'relu = true', 'relu = true\nrtol = 0.5', ":12: block 1: rtol should be a number from 0 to 0.001"),
    ("no blocks", None, "[ranges]\n", ":1: the spec has no [[block]]"),
]


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_every_bad_spec_is_one_line_naming_its_line(tmp_path, capsys, case):
    _, old, new, expected = case
    path, spec = handmade.conv_book(tmp_path)
    text = spec.read_text()
    spec.write_text(new if old is None else text.replace(old, new, 1))
    if old is not None:
        assert old in text
    assert cli.main(["check", str(path), "--engine", "cached"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith(f"xlnet: error: {spec}:") and expected in err, err


@needs_libreoffice
def test_text_in_an_input_range_names_the_spec_line_and_the_cell(tmp_path, capsys):
    path, spec = handmade.conv_book(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["my conv"]["C3"] = "n/a"
    wb.save(path)
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:3: input range 'my conv'!B2:I9" in err and "'my conv'!C3 holds text 'n/a'" in err


@needs_libreoffice
def test_open_reads_any_workbook_as_tensors(tmp_path):
    path, _ = handmade.conv_book(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb.defined_names["kernel"] = openpyxl.workbook.defined_name.DefinedName("kernel", attr_text="'my conv'!$L$2:$N$4")
    wb["my conv"]["P2"] = "=1/0"
    wb.save(path)
    book = xlnet.open(path)
    assert book.recalculated and book.engine == "libreoffice"
    x, w = book["'my conv'!B2:I9"], book["kernel"]
    assert x.dtype == torch.float64 and tuple(x.shape) == (8, 8) and tuple(w.shape) == (3, 3)
    torch.testing.assert_close(book["'my conv'!B12:G17"],
                               F.relu(F.conv2d(x[None, None], w[None, None], book["'my conv'!L6"].reshape(1)))[0, 0])
    assert book["'my conv'!L6"].shape == ()
    assert book.formula("'my conv'!B12") == "{=MAX(0,SUM(B2:D4*$L$2:$N$4)+$L$6)}"
    assert book.formula("'my conv'!B2") is None
    assert np.isnan(book.values("'my conv'!O2:O3")).all()  # blanks read as NaN
    with pytest.raises(InputError, match=r"'my conv'!P2 holds #DIV/0!"):
        book["'my conv'!O2:P2"]
    with pytest.raises(InputError, match="no defined name 'kernl'"):
        book["kernl"]
    with pytest.raises(InputError, match="at most 10,000,000 are read"):
        book["'my conv'!A1:XFD1048576"]  # refused before anything is allocated
    assert book.names == {"kernel": "'my conv'!L2:N4"}
    assert "_xlnet" not in book.sheetnames


@needs_libreoffice
def test_open_proves_the_recalculation_on_a_book_saved_without_values(tmp_path):
    path, _ = handmade.cross_entropy_book(tmp_path)
    assert openpyxl.load_workbook(path, data_only=True)["xent"]["A14"].value is None  # no cached values
    book = xlnet.open(path)
    torch.testing.assert_close(book["xent!A14:E17"], F.softmax(book["xent!A2:E5"], dim=1))
    stale = xlnet.open(path, engine="cached")
    assert not stale.recalculated and "nothing proves" in stale.notes[0]


def test_a_block_output_read_in_a_shape_the_next_op_cannot_take_is_one_line(tmp_path):
    path, spec = handmade.conv_book(tmp_path)
    spec.write_text(spec.read_text().replace("""x = "'my conv'!B12:G17"\n""",
                                             """x = { range = "'my conv'!B12:G17", shape = [36] }\n"""))
    with pytest.raises(spec_mod.SpecError, match=r"conv.xlnet.toml:\d+: block 2: op max_pool2d cannot take inputs of "
                                                 r"shapes x \[36\]"):
        xlnet.check(path, engine="cached")
