"""The sheets read at a glance: frozen headers, a legend, readable editable cells, colour
scales that mean something, text that fits, charts, guard rails on hyper-parameters,
drag-friendly formulas; and the new sheets (annealed Adam, EMA, drop rate) checked by torch."""

import shutil

import openpyxl
import pytest

import xlnet
from xlnet.sheet import sheet as sheet_mod, styles
from xlnet.workbook import read
from xlnet.workbook.fillpatterns import relative
from xlnet.lessons.graddesc import TABLE_ROW

from conftest import LESSONS, ROOT, break_formula, check, edit, needs_libreoffice, recalculated, tensor_cell

BOOKS = {name: ROOT / "workbooks" / f"{name}.xlsx" for name in LESSONS}


@pytest.fixture(scope="module")
def opened():
    return {name: openpyxl.load_workbook(path) for name, path in BOOKS.items()}


def _sheets(opened):
    """The visible sheets of lesson blocks (the start sheet holds only text)."""
    for name, wb in opened.items():
        for ws in wb.worksheets:
            if ws.sheet_state == "visible" and ws.title != "start":
                yield name, ws


def test_every_book_starts_with_a_sheet_that_says_what_it_teaches(opened):
    from xlnet.sheet.start import GLOSSARY
    for name, wb in opened.items():
        start = wb.worksheets[0]
        assert start.title == "start", name
        text = [c.value for row in start.iter_rows() for c in row if isinstance(c.value, str)]
        assert text[0].startswith("Start here:") and "What to edit" in text and "Words used" in text, name
        others = [ws.title for ws in wb.worksheets[1:] if ws.sheet_state == "visible"]
        listed = text[text.index("The sheets, in order") + 1:text.index("What to edit")]
        assert listed[0::2] == others, name  # each sheet's name, then its title, in the book's order
        assert any(t in GLOSSARY for t in text) and f"xlnet check {name}.xlsx" in text[-1], name


def _luminance(hex_colour):
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def _contrast(a, b):
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_long_and_wide_sheets_keep_their_headers_in_view(opened):
    for book, ws in _sheets(opened):
        if ws.max_row > sheet_mod.LONG_SHEET_ROWS + 10 or ws.max_column > sheet_mod.WIDE_SHEET_COLS + 2:
            assert ws.freeze_panes, f"{book}!{ws.title} ({ws.max_row} rows) has no frozen panes"
            assert ws.print_title_rows, f"{book}!{ws.title} prints no title rows"
    sgd = opened["graddesc"]["sgd"]
    assert sgd.freeze_panes == f"B{TABLE_ROW + 3}"  # the step table's two header rows stay on screen
    assert sgd.print_title_rows == f"${TABLE_ROW + 1}:${TABLE_ROW + 2}"
    assert opened["embeddings"]["train"].freeze_panes and opened["conv"]["matmul"].freeze_panes


def test_every_sheet_has_a_legend_and_editable_cells_read_well(opened):
    dark = 4.5  # WCAG AA for text
    for book, ws in _sheets(opened):
        legend = [c.value for c in ws[1] if isinstance(c.value, str) and c.column > 1]
        assert any("formula" in text for text in legend), f"{book}!{ws.title}: no legend beside the title"
    conv = opened["conv"]["conv"]
    for address in ("G6", "K8", "L8", "M8"):  # an image pixel and a kernel row, under the heat map
        cell = conv[address]
        colour = (cell.font.color.rgb or "FF000000")[-6:]
        for heat in styles.HEAT_DIVERGING + styles.HEAT_POSITIVE:
            assert _contrast(colour, heat.lstrip("#")) >= dark, f"conv!{address}: {colour} on {heat}"
        assert cell.border.left.style == "medium" and cell.border.left.color.rgb.endswith("2F75B5")
    assert any("edit me" in str(c.value) for c in conv[1])
    assert any("hyper-parameter" in str(c.value) for c in opened["conv"]["dropout"][1])


def _scales(ws):
    for rng, rules in ws.conditional_formatting._cf_rules.items():
        for rule in rules:
            if rule.colorScale is not None:
                yield str(rng.sqref), rule.colorScale


def test_signed_quantities_diverge_around_zero_and_rows_get_their_own_scale(opened):
    dot = dict(_scales(opened["embeddings"]["dotprod"]))
    errors = read.read_workbook(BOOKS["embeddings"]).tensors["dot_error"]
    first = errors.address(0).split("!")[1]
    scale = next(s for rng, s in dot.items() if rng.startswith(first))
    kinds = [(v.type, float(v.val)) for v in scale.cfvo]
    assert kinds[1] == ("num", 0.0) and kinds[0][1] == -kinds[2][1] < 0, kinds
    assert len(scale.color) == 3  # red, white at 0, blue: the worst error (-5) is the reddest cell
    stable = [rng for rng, _ in _scales(opened["softmax"]["stable"])]
    assert "B6:F6" in stable and "B7:F7" in stable  # the logits near 800 do not wash out the ordinary row
    compare = [rng for rng, _ in _scales(opened["graddesc"]["compare"])]
    assert compare == ["C6:BJ12"], compare  # epoch 0 (column B) is left out; 60 epochs: C to BJ


def test_text_fits(opened):
    for book, ws in _sheets(opened):
        intro = ws["A2"].value
        if intro and len(intro) > 100:
            merged = next((r for r in ws.merged_cells.ranges if r.min_row == 2 and r.min_col == 1), None)
            assert merged is not None and ws["A2"].alignment.wrap_text, f"{book}!{ws.title}: the intro is one long line"
            if len(intro) > sheet_mod.PARAGRAPH_WIDTH * 1.2:
                assert ws.row_dimensions[2].height and ws.row_dimensions[2].height > 15
        for row in (2, 3, 4):
            text = ws.cell(row, 1).value
            if isinstance(text, str) and row > 2 and len(text) > 110:
                assert ws.cell(row, 1).alignment.wrap_text, f"{book}!{ws.title}!A{row} runs off the screen"
            assert "torch" not in str(ws.cell(2, 1).value).lower(), f"{book}!{ws.title}: torch belongs in the footer"
    assert opened["embeddings"]["ratings"].column_dimensions["A"].width >= len("known ratings N") + 1
    assert opened["embeddings"]["lookup"].column_dimensions["A"].width >= len("user 107") + 1
    assert "padded" not in opened["conv"]["matmul"]["A2"].value
    notes = [c.value for row in opened["softmax"]["sigmoid"].iter_rows() for c in row if isinstance(c.value, str)]
    assert any("IF(z>=0" in n and "overflow" in n for n in notes)
    footers = [c.value for row in opened["conv"]["conv"].iter_rows() for c in row
               if isinstance(c.value, str) and c.value.startswith("Every block is checked against PyTorch")]
    assert footers and "F.conv2d" in footers[0]


def test_charts_where_a_picture_says_more(opened):
    data = opened["graddesc"]["data"]
    assert [type(c).__name__ for c in data._charts] == ["ScatterChart"]
    for name in ("sgd", "momentum", "rmsprop", "adam", "adam_uncorrected", "adamw", "adam_annealed"):
        charts = opened["graddesc"][name]._charts
        assert [type(c).__name__ for c in charts] == ["LineChart"], name
    conv_chart = opened["conv"]["conv"]._charts[0]
    assert conv_chart.anchor._from.row <= 5, "the conv lesson's answer is in the first screen"
    assert [type(c).__name__ for c in opened["graddesc"]["ema"]._charts] == ["ScatterChart"]


def test_hyper_parameters_have_guard_rails(opened):
    def rules(ws):
        return {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}

    dropout = rules(opened["conv"]["dropout"])
    rule = dropout["D4"]
    assert rule.formula1 == "AND(D4>=0,D4<1)" and "0" in rule.prompt and "< 1" in rule.prompt
    sgd = rules(opened["graddesc"]["sgd"])
    assert sgd["E4"].formula1 == "E4>0"
    adam = rules(opened["graddesc"]["adam"])
    assert adam["E5"].formula1 == "AND(E5>=0,E5<1)"  # beta1 in [0, 1)
    assert rules(opened["softmax"]["softmax"])["H4"].formula1 == "H4>0"


def test_fill_drag_friendly_predictions(opened):
    wb = opened["embeddings"]
    manifest = read.read_workbook(BOOKS["embeddings"]).manifest
    for name in ("dot_pred", "epoch0_pred"):
        sheet, rng = list(wb.defined_names[manifest["tensors"][name]["tiles"][0]].destinations)[0]
        cells = [c for row in wb[sheet][rng.replace("$", "")] for c in row if isinstance(c.value, str)]
        patterns = {relative(c.value, c.row, c.column) for c in cells}
        assert len(cells) == 100 and len(patterns) == 1, (name, sorted(patterns)[:3])


@needs_libreoffice
def test_new_sheets_are_checked_against_torch(built, tmp_path):
    [graddesc, conv] = check([built["graddesc"], built["conv"]])
    assert graddesc.passed and conv.passed
    ops = {b.op: b for b in graddesc.blocks + conv.blocks}
    for op in ("exp_decay_lr", "moving_average", "ema_by_adam", "line_points", "drop_rate", "ewma", "bias_correct"):
        assert op in ops, op
    runs = {b.title.split(":")[0] for b in graddesc.blocks if b.op == "fit_line"}
    assert "adam_annealed" in runs
    # a broken cell fails its own block, and no other
    for book, tensor, index, old, new in (("graddesc", "adaml_lr_t", 5, "INT(", "1+INT("),
                                          ("graddesc", "moving_average", 3, "AVERAGE(", "MEDIAN("),
                                          ("conv", "drop_rate", 0, "COUNTIF(", "1+COUNTIF(")):
        copy = tmp_path / f"{tensor}.xlsx"
        shutil.copy(built[book], copy)
        break_formula(copy, tensor, index, old, new)


def test_plot_draws_the_scatter_charts(built, tmp_path):
    written = xlnet.plot(built["graddesc"], out=tmp_path, charts_only=True)
    names = {p.name for p in written}
    assert {"graddesc-data_and_fits.png", "graddesc-ema.png", "graddesc-adam_annealed_loss.png"} <= names, names


@needs_libreoffice
def test_new_sheets_follow_their_edited_inputs(built, tmp_path):
    graddesc, conv = tmp_path / "graddesc.xlsx", tmp_path / "conv.xlsx"
    shutil.copy(built["graddesc"], graddesc)
    shutil.copy(built["conv"], conv)
    edit(graddesc, {tensor_cell(graddesc, "adaml_gamma"): 0.5, tensor_cell(graddesc, "ema_beta"): 0.6,
                    tensor_cell(graddesc, "ema_series", 4): 30.0})
    edit(conv, {tensor_cell(conv, "dropout_p"): 0.2})
    reports = check([graddesc, conv])
    assert all(r.passed for r in reports), "\n".join(r.text() for r in reports)
    book = recalculated(graddesc)
    last_epoch = int(book.tensors["epochs"].values) - 1
    assert book.tensors["adaml_lr_t"].values[-1] == pytest.approx(float(book.tensors["adaml_lr"].values) * 0.5 ** last_epoch)
    assert book.tensors["ema"].values[0] == pytest.approx(0.4 * book.tensors["ema_series"].values[0])
    assert recalculated(conv).tensors["drop_rate"].values < 0.5
