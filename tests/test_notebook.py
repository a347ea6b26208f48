"""What a notebook cell ending in an xlnet object shows: a block as a coloured table, a workbook
as its tensors, an opened book as its sheets; short, and every text escaped."""

import numpy as np

import xlnet
from xlnet.workbook.html import MAX_SHOWN, tensor_table
from conftest import ROOT


def test_a_block_is_a_table_in_its_colours():
    book = xlnet.load(ROOT / "workbooks" / "attention.xlsx")
    weights = book.tensors["s1_h1_weights"]
    html = weights._repr_html_()
    assert html.startswith("<p><b>s1_h1_weights</b> [8, 8] at attention!") and html.count("<tr>") == 8
    assert "background:#ffffff" in html and "background:#" in html.replace("background:#ffffff", "")
    assert "nan" not in html  # the masked future is an empty cell
    signed = tensor_table("g", np.array([[-1.0, 0.0, 1.0]]))
    assert "#f86c6c" in signed and "#5894f8" in signed  # red below 0, blue above, as the sheets colour them


def test_a_large_block_shows_its_corner_and_says_so():
    html = tensor_table("big", np.arange(40 * 30, dtype=float).reshape(40, 30))
    assert html.count("<tr>") == MAX_SHOWN and f"showing {MAX_SHOWN} x {MAX_SHOWN} of 40 x 30" in html


def test_names_and_words_are_escaped():
    html = tensor_table("<b>x</b>", np.array(["<script>", "a&b"], dtype=object))
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html and "&lt;b&gt;x" in html


def test_a_workbook_lists_its_tensors_and_stays_short():
    book = xlnet.load(ROOT / "workbooks" / "backprop.xlsx")
    html = book._repr_html_()
    assert "<td>s1_conv</td>" in html and len(html) < 100_000
    assert len(repr(book)) < 200


def test_an_opened_book_shows_its_sheets():
    book = xlnet.open(ROOT / "workbooks" / "conv.xlsx", engine="cached")
    html = book._repr_html_()
    assert "conv.xlsx" in html and "as saved" in html and "conv" in html and "<th>name</th>" in html
