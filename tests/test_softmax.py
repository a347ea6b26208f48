"""The softmax and cross-entropy workbook, checked against torch after real recalculation."""

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import xlnet
from xlnet.workbook import legibility
from xlnet import engines
from xlnet.workbook import read
from conftest import check, assert_every_block_checked, edit, needs_gnumeric, needs_libreoffice, recalculated, statuses, tensor_cell


@needs_libreoffice
def test_libreoffice_passes_and_confirms_the_overflow(built, tmp_path):
    [report] = check(built["softmax"], engine="libreoffice")
    assert report.passed, report.text()
    ops = {b.op for b in report.blocks}
    assert {"softmax", "log_softmax", "nll_loss", "cross_entropy", "ce_autograd", "sigmoid",
            "bce_with_logits"} <= ops
    # the overflow must be LibreOffice's own: a copy saved by openpyxl keeps no cached value
    # (no #NUM! from the build), so only the recalculation can put the errors there
    blank = tmp_path / "no-cache.xlsx"
    openpyxl.load_workbook(built["softmax"]).save(blank)
    assert xlnet.load(blank).tensors["naive_probs"].errors == {k: "blank" for k in range(10)}
    recalculated = read.read_workbook(engines.recalc([blank], "libreoffice", tmp_path)[0])
    assert recalculated.tensors["naive_probs"].errors == {5: "#NUM!", 6: "#NUM!", 7: "#NUM!", 8: "#NUM!", 9: "#NUM!"}


@needs_gnumeric
def test_gnumeric_passes(built):
    [report] = check(built["softmax"], engine="gnumeric")
    assert report.passed, report.text()


@needs_libreoffice
def test_a_number_where_the_overflow_should_be_fails(copy_of):
    path = copy_of("softmax")
    sheet, cell = tensor_cell(path, "naive_probs", 7)
    _, total = tensor_cell(path, "naive_sums", 1)
    edit(path, {(sheet, cell): f"=IFERROR(0*{total},0)+0.2"})  # a number, read from an input, where #NUM! belongs
    [report] = check(path, engine="libreoffice")
    failed = [b for b in report.blocks if b.status == "fail"]
    assert [b.tensor for b in failed] == ["naive_probs"] and failed[0].worst_cell == f"{sheet}!{cell}"


@needs_libreoffice
def test_editing_a_logit_and_the_temperature_still_passes(copy_of):
    path = copy_of("softmax")
    edit(path, {tensor_cell(path, "logits", 2): 4.5, tensor_cell(path, "T", 0): 2.5})
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    book = recalculated(path)
    logits = book.tensors["logits"].values
    assert logits[0, 2] == 4.5
    z = logits / 2.5
    expected = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(book.tensors["probs"].values, expected, rtol=1e-12)


@needs_libreoffice
def test_log_base_10_mistake_fails_exactly_the_log_block(copy_of):
    path = copy_of("softmax")
    import openpyxl
    sheet, cell = tensor_cell(path, "log_probs", 3)
    book = openpyxl.load_workbook(path)
    book[sheet][cell] = book[sheet][cell].value.replace("LN(", "LOG(")
    book.save(path)
    [report] = check(path, engine="libreoffice")
    by_tensor = statuses(report)
    assert by_tensor["log_probs"] == "fail"
    assert [t for t, s in by_tensor.items() if s == "fail"] == ["log_probs"]


@needs_libreoffice
@settings(deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(classes=st.integers(2, 8), batch=st.integers(1, 6), seed=st.integers(0, 10_000),
       temperature=st.sampled_from([0.05, 0.5, 1.0, 3.0]), z=st.sampled_from([-700.0, -50.0, 50.0, 700.0]),
       huge=st.sampled_from([900.0, 5000.0]))
def test_random_logits_including_extreme_ones(tmp_path, classes, batch, seed, temperature, z, huge):
    out = tmp_path / f"{classes}-{batch}-{seed}-{temperature}-{z}-{huge}"
    [path] = xlnet.build(["softmax"], out=out, seed=seed, classes=classes, batch=batch, temperature=temperature)
    assert [str(p) for p in legibility.problems(path)] == []  # read whole, whatever the settings
    # a very large or very negative scaled logit (z = logit / T, still inside EXP's range) on the
    # softmax sheet, and an even larger one where the naive softmax is meant to overflow
    edit(path, {tensor_cell(path, "logits", 0): z * temperature,
                tensor_cell(path, "big_logits", classes): huge})
    [report] = check(path, engine="libreoffice")
    assert_every_block_checked(report, path)


@needs_libreoffice
@needs_gnumeric
def test_saturated_sigmoid_and_bce_stay_finite(copy_of):
    path = copy_of("softmax")
    edit(path, {tensor_cell(path, "logits", 0): -2100.0, tensor_cell(path, "logits", 1): 40.0})
    for engine in ("libreoffice", "gnumeric"):
        [report] = check(path, engine=engine)
        assert report.passed, report.text()
