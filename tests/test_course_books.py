"""Course spreadsheets typed as people type them, checked from a teacher's spec: every block
expressible passes, each planted bug is named at its cell, and what a spec cannot use is
refused with a line, never broadcast or crashed on."""

import shutil
import tempfile

import openpyxl
import pytest

from xlnet import cli, engines
from xlnet.checking import spec as spec_mod
from xlnet.ops import expression
from xlnet.errors import ManifestError
from xlnet.workbook.survey import survey

import course_books
from conftest import check, needs_gnumeric, needs_libreoffice, session_warm


def blocks(report):
    return {b.title: b for b in report.blocks}


@needs_libreoffice
@pytest.mark.parametrize("make", course_books.MAKERS, ids=lambda m: m.__name__)
def test_every_block_of_a_course_book_passes(tmp_path, make):
    path, spec = make(tmp_path)
    [report] = check(path)
    assert report.passed, report.text()
    declared = spec_mod.load(spec, survey(path).sheets).manifest["ops"]
    assert len(report.blocks) == len(declared) and all(b.status == "pass" and b.e2e_pass for b in report.blocks)


PLANTED = [  # (maker, options, the block that must fail, the cell it must name)
    (course_books.training_run_book, {"lr_cell": "bug"}, "the step, row after row", "sgd!B8"),
    (course_books.attention_book, {"scale": "2"}, "scores, the future blank", None),
    (course_books.ewma_book, {"beta_cell": "0.8"}, "running average", "ewma!C6"),
    (course_books.line_fit_book, {"mean_rows": 29}, "mean squared error", "fit!G4"),
    (course_books.xent_book, {"log": "LOG"}, "y log p", None),
    (course_books.pool_book, {"pool_cell": "D10"}, "2x2 max-pool, written every other cell", "pool!D10"),
    (course_books.titanic_book, {"word": "female"}, "is male", None),
    (course_books.sgd_book, {"lr_text": "0.01"}, "one SGD step, lr typed in the formulas", None),
]


@needs_libreoffice
@pytest.mark.parametrize("make, options, title, cell", PLANTED, ids=lambda p: getattr(p, "__name__", None))
def test_a_planted_bug_fails_its_own_block_at_its_cell(tmp_path, make, options, title, cell):
    path, _ = make(tmp_path, **options)
    [report] = check(path)
    found = blocks(report)
    assert found[title].status == "fail", report.text()
    if cell:
        assert found[title].worst_cell == cell
    upstream = [b for b in report.blocks if b.title != title and b.status == "fail"
                and not b.title.startswith(("root", "cross", "weighted", "probability", "mean", "dense"))]
    assert upstream == [], report.text()


@needs_libreoffice
def test_a_running_average_whose_state_is_its_own_column_is_run_end_to_end(tmp_path):
    path, spec = course_books.ewma_book(tmp_path)
    spec.write_text(spec.read_text().replace('init = "ewma!C2"\n', ""))  # as if it started from 0
    [report] = check(path)
    [block] = report.blocks
    assert block.status == "fail" and block.worst_cell == "ewma!C3" and not block.e2e_pass, report.text()


@needs_libreoffice
def test_a_training_run_down_the_rows_is_run_end_to_end_through_every_step(tmp_path):
    path, _ = course_books.training_run_book(tmp_path, lr_cell="bug")  # row 7 steps by beta, not by lr
    [report] = check(path)
    found = blocks(report)
    # each block on the sheet's own values: only the step holds a wrong cell ...
    assert [b.title for b in report.blocks if b.status != "pass"] == ["the step, row after row"]
    # ... while torch's run of the whole recurrence from the first row sees every later step move
    assert not found["gradient in a, one row a step"].e2e_pass and not found["gradient in b"].e2e_pass
    assert found["rmsprop step without eps"].e2e_pass


def test_rows_stands_for_the_parameters_read_and_written(tmp_path):
    path, spec = course_books.training_run_book(tmp_path)
    entry = spec_mod.load(spec, survey(path).sheets).manifest
    step = next(e for e in entry["ops"] if e["op"] == "sgd_update")
    assert entry["tensors"][step["inputs"]["p"]]["tiles"] == ["sgd!B2:C25"]
    assert entry["tensors"][step["outputs"]["out"]]["tiles"] == ["sgd!B3:C26"]
    spec.write_text(spec.read_text().replace('rows = "sgd!B2:C26"', 'rows = "sgd!B2:C26"\np = "sgd!B2:C25"'))
    with pytest.raises(spec_mod.SpecError, match="rows = the parameters, a row per step, stands for p and out"):
        spec_mod.load(spec, survey(path).sheets)


def test_a_column_against_a_one_column_matrix_is_refused_not_broadcast(tmp_path):
    path, spec = course_books.line_fit_book(tmp_path)
    spec.write_text(spec.read_text().replace('op = "mse_loss"\nx = "fit!C2:C30"\ny = "y"',
                                             'op = "mse_loss"\nx = { range = "fit!C2:C30", shape = [29, 1] }\n'
                                             'y = { range = "fit!B2:B30", shape = [29] }'))
    with pytest.raises(spec_mod.SpecError, match=r"linefit.xlnet.toml:\d+: block 5: shape mismatch: op mse_loss pairs "
                                                 r"x and y cell by cell, but they have shapes \[29, 1\] and \[29\]"):
        spec_mod.load(spec, survey(path).sheets)


def test_every_mistake_of_a_spec_is_one_line_of_its_own(tmp_path, capsys):
    path, spec = course_books.gram_book(tmp_path)
    text = spec.read_text().replace('"gram!H2:J4"', '"gram!H2:J"').replace('f = "features"', 'f = "nowhere"')
    spec.write_text(text.replace('transpose_b = true', 'transpose_b = "yes"'))
    assert cli.main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"xlnet: error: {spec}:") for line in lines), lines
    where = [line[len(f"xlnet: error: {spec}:"):].split(": ")[1] for line in lines]
    assert where == ["block 1", "block 2", "block 3"], lines
    assert "nowhere" in lines[0] and "transpose_b" in lines[1] and "gram!H2:J" in lines[2]


@needs_libreoffice
def test_a_bad_input_range_skips_only_the_blocks_that_read_it(tmp_path):
    path, spec = course_books.gram_book(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["gram"]["A10"] = "n/a"  # a range the last block is pointed at by mistake
    wb.save(path)
    spec.write_text(spec.read_text().replace('g = "gram!H2:J4"', 'g = "gram!H2:J4"\nshift = "gram!A10"')
                    .replace('"mean((g - 0.1) ^ 2)"', '"mean((g - shift) ^ 2)"'))
    [report] = check(path)
    found = blocks(report)
    assert found["Gram matrix"].status == "pass" and found["the same, cell by cell, as matmul"].status == "pass"
    assert found["style loss against 0.1"].status == "skip"
    assert "gram!A10 holds text 'n/a'" in found["style loss against 0.1"].message
    assert not report.passed and any("gram!A10" in p for p in report.problems)


@needs_libreoffice
def test_engine_cached_checks_a_spec_book_as_saved_and_says_so(tmp_path):
    path, spec = course_books.line_fit_book(tmp_path)
    saved = tmp_path / "saved"
    saved.mkdir()
    with tempfile.TemporaryDirectory() as work:  # the book as LibreOffice saves it: formulas and their values
        [copy] = engines.recalc([path], "libreoffice", work, warm=session_warm("libreoffice"))
        shutil.copyfile(copy, saved / path.name)
    shutil.copyfile(spec, saved / spec.name)
    [report] = check(saved / path.name, engine="cached")
    assert report.passed and report.sentinel == "as saved", report.text()
    assert any("nothing was recalculated" in note for note in report.notes)
    assert "values as last saved" in report.text()
    assert cli.main(["check", "--engine", "cached", str(path)]) == 2  # openpyxl saved no values: said, not guessed


@needs_gnumeric
def test_gnumeric_says_it_does_not_read_a_tables_structured_references(tmp_path):
    path, _ = course_books.titanic_book(tmp_path)
    [report] = check(path, engine="gnumeric")
    assert any("Gnumeric does not read structured references" in n and "titanic!J4 (Passengers[p])" in n
               for n in report.notes), report.text()
    assert blocks(report)["is male"].status == "pass"


@pytest.mark.parametrize("text, why", [
    ("__import__('os')", "unknown function __import__"),
    ("x.__class__", "only x.T"),
    ("lambda: 1", "not part of the language"),
    ("x[0]", "not part of the language"),
    ("sum", "is a function"),
    ("x + 'a'", "a word in quotes only compares"),
    ("sum(x, axis=1)", "takes only dim="),
    ("x +", "is not a formula"),
])
def test_the_expression_language_refuses_what_it_does_not_know(text, why):
    with pytest.raises(ManifestError, match=why):
        expression.parse(text)


def test_expression_shapes_broadcast_as_torch_does_and_say_when_they_cannot():
    op = expression.Expression
    assert op.shape({"x": (3, 4), "b": (3, 1)}, {"expr": "x + b", "words": []}) == (3, 4)
    assert op.shape({"f": (3, 5)}, {"expr": "f @ f.T", "words": []}) == (3, 3)
    assert op.shape({"y": (4, 3), "p": (4, 3)}, {"expr": "-sum(y * ln(p), dim=1)", "words": []}) == (4,)
    with pytest.raises(ManifestError, match=r"do not combine"):
        op.shape({"a": (3,), "b": (3, 1)}, {"expr": "rmse(a, b)", "words": []})


def test_a_momentum_step_needs_no_step_count_torch_ignores(tmp_path):
    path, spec = course_books.sgd_book(tmp_path)
    spec.write_text('''[[block]]
op = "optimizer_step"
optimizer = "momentum"
p = "step!A2:A5"
g = "step!B2:B5"
v = "step!B2:B5"
lr = 0.1
beta = 0.9
out = "step!C2:C5"
''')
    loaded = spec_mod.load(spec, survey(path).sheets)
    assert "t" not in loaded.manifest["ops"][0]["inputs"]
    spec.write_text(spec.read_text().replace('"momentum"', '"adam"').replace("beta = 0.9", "beta1 = 0.9\nbeta2 = 0.99\n"
                                                                              "eps = 1e-8\nm = \"step!B2:B5\""))
    with pytest.raises(spec_mod.SpecError, match="lacks input 't'"):
        spec_mod.load(spec, survey(path).sheets)


@needs_libreoffice
def test_a_pivot_table_laid_out_again_is_named_not_checked_on_moved_cells(tmp_path, capsys, monkeypatch):
    path, _ = course_books.pivot_book(tmp_path)
    monkeypatch.setattr(engines, "installed", lambda: ["libreoffice"])  # no engine that leaves it alone
    assert cli.main(["check", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "pivot table Ratings (ratings!F3:J8) is laid out again by libreoffice" in line
    assert "input cell ratings!G3 holds 4 in the file and blank after recalculation" in line
    assert "--engine cached" in line


@needs_gnumeric
def test_a_book_with_pivot_tables_is_checked_by_gnumeric_which_leaves_them_alone(tmp_path):
    path, _ = course_books.pivot_book(tmp_path)
    other, _ = course_books.offset_book(tmp_path)
    pivoted, plain = check([path, other])  # asked of LibreOffice, in the order given
    assert pivoted.engine == "gnumeric" and pivoted.passed, pivoted.text()
    assert any("lays the pivot tables of this book out again" in note for note in pivoted.notes)
    assert plain.engine == "libreoffice" and plain.passed and plain.path.endswith("smooth.xlsx")


@needs_libreoffice
def test_an_annotated_book_speaks_of_its_ranges_not_of_internal_names(tmp_path, capsys):
    path, spec = course_books.line_fit_book(tmp_path)
    out = tmp_path / "graded" / "linefit.xlsx"
    assert cli.main(["annotate", str(path), "--spec", str(spec), "-o", str(out)]) == 0
    wb = openpyxl.load_workbook(out)
    wb["fit"]["A7"] = "n/a"
    wb.save(out)
    capsys.readouterr()
    assert cli.main(["check", str(out)]) == 2
    err = capsys.readouterr().err
    assert "input cell fit!A7 of fit!A2:A30 holds text 'n/a'" in err and "b1_" not in err, err


def test_a_literal_is_never_an_output(tmp_path):
    from xlnet import manifest as manifest_mod

    path, spec = course_books.sgd_book(tmp_path)
    manifest = spec_mod.load(spec, survey(path).sheets).manifest
    literal = next(n for n, info in manifest["tensors"].items() if "value" in info)
    out = manifest["ops"][0]["outputs"]["out"]
    manifest["tensors"][out] = dict(manifest["tensors"][literal], role="output", shape=[4], value=[0.0] * 4)
    with pytest.raises(ManifestError, match="is an output with a value of its own"):
        manifest_mod.validate(manifest, "edited")


def test_a_cse_array_saved_as_its_first_cell_reaches_its_whole_range(tmp_path):
    from openpyxl.worksheet.formula import ArrayFormula

    wb = openpyxl.Workbook()
    wb.active.title = "gram"
    for r in range(2, 5):
        for c in range(2, 7):
            wb["gram"].cell(row=r, column=c, value=r * c / 10)
    wb["gram"]["H2"] = ArrayFormula("H2:J4", "=MMULT(B2:F4,TRANSPOSE(B2:F4))")  # saved as H2 alone
    path = tmp_path / "gram.xlsx"
    wb.save(path)
    assert survey(path).sheets.extent["gram"] == (4, 8)  # the used area the file states ends at H
    spec = tmp_path / "gram.xlnet.toml"
    spec.write_text('[[block]]\nop = "expr"\nexpr = "f @ f.T"\nf = "gram!B2:F4"\nout = "gram!H2:J4"\n')
    [entry] = spec_mod.load(spec, survey(path).sheets).manifest["ops"]
    assert entry["outputs"]["out"] and entry["op"] == "expr"
