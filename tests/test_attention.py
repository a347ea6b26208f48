"""Attention in cells: layer norm, causal scores, their softmax and the weighted sum of the
values, each an op with a portable formula, checked against torch (``F.layer_norm``,
``F.softmax``, ``F.scaled_dot_product_attention``) in LibreOffice and Gnumeric; the
``XLNET_ATTENTION`` UDF beside them."""

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

from xlnet import ops, udfs
from xlnet.sheet.book import Book
from conftest import check, needs_gnumeric, needs_libreoffice


def _at(op, **given):
    return op.resolve_attrs(given, op.name)


@pytest.mark.parametrize("causal", [True, False])
def test_scores_softmax_and_mix_make_torchs_attention(causal):
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(6, 4)) for _ in range(3))
    scores = ops.AttentionScores.cached({"q": q, "k": k}, _at(ops.AttentionScores, causal=causal))
    weights = ops.MaskedSoftmax.cached({"scores": scores}, _at(ops.MaskedSoftmax, causal=causal))
    out = ops.AttentionMix.cached({"weights": weights, "v": v}, _at(ops.AttentionMix, causal=causal))
    t = [torch.tensor(a) for a in (q, k, v)]
    want = F.scaled_dot_product_attention(*(a[None] for a in t), is_causal=causal)[0].numpy()
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    assert np.isnan(scores[0, 1]) == causal and np.isnan(weights[0, 1]) == causal
    # each op's own reference agrees with its cached values (what the sheet computes)
    ref = ops.MaskedSoftmax.reference({"scores": torch.tensor(scores)}, _at(ops.MaskedSoftmax, causal=causal)).numpy()
    np.testing.assert_allclose(ref, weights, rtol=1e-13, atol=1e-15)
    end = ops.ScaledDotProductAttention.reference(dict(zip("qkv", t)), _at(ops.ScaledDotProductAttention,
                                                                           causal=causal)).numpy()
    np.testing.assert_allclose(end, want, rtol=0, atol=0)


def test_layer_norm_is_torchs():
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
    at = _at(ops.LayerNorm)
    want = F.layer_norm(torch.tensor(x), (3,), torch.tensor(w), torch.tensor(b), eps=1e-5).numpy()
    np.testing.assert_allclose(ops.LayerNorm.cached({"x": x, "weight": w, "bias": b}, at), want, rtol=1e-13)


def _attention_book(path):
    rng = np.random.default_rng(3)
    T, d = 5, 4
    book = Book("attention-test", {"seed": 0})
    sheet = book.sheet("attn", "Attention", "x normalised; q from it; k and v given; scores, softmax, mix.")
    x = sheet.place("x", (T, d), row=3, col=1, role="input", values=np.round(rng.normal(size=(T, d)), 2), caption="x")
    gain = sheet.place("gain", (d,), row=3, col=7, role="parameter", values=np.round(1 + 0.1 * rng.normal(size=d), 2),
                       caption="gain")
    shift = sheet.place("shift", (d,), row=6, col=7, role="parameter", values=np.round(0.1 * rng.normal(size=d), 2),
                        caption="shift")
    q = sheet.apply(ops.LayerNorm(x=x, weight=gain, bias=shift), "q", row=11, col=1, caption="layer norm")
    k = sheet.place("k", (T, d), row=11, col=7, role="input", values=np.round(rng.normal(size=(T, d)), 2), caption="k")
    v = sheet.place("v", (T, d), row=11, col=13, role="input", values=np.round(rng.normal(size=(T, d)), 2),
                    caption="v")
    scores = sheet.apply(ops.AttentionScores(q=q, k=k), "scores", row=20, col=1, caption="scores", blank="nan")
    weights = sheet.apply(ops.MaskedSoftmax(scores=scores), "weights", row=20, col=8, caption="softmax", blank="nan")
    out = sheet.apply(ops.AttentionMix(weights=weights, v=v), "out", row=29, col=1, caption="mix")
    book.composite(ops.ScaledDotProductAttention(q=q, k=k, v=v), {"out": out}, title="attention end to end")
    book.save(path)
    return path


@needs_libreoffice
def test_the_ops_written_in_cells_pass_and_a_broken_cell_fails_its_own_block(tmp_path):
    path = _attention_book(tmp_path / "attention.xlsx")
    sheet = openpyxl.load_workbook(path)["attn"]
    assert sheet["C23"].value is None  # the future of position 1: a blank cell
    assert "MAX(" in sheet["I24"].value and "SUMPRODUCT" not in sheet["I24"].value  # EXP of single cells only
    [report] = check(path)
    assert report.passed and {b.status for b in report.blocks} == {"pass", "e2e"}, report.text()
    for cell, block in (("B24", "scores"), ("I24", "weights")):
        broken = tmp_path / f"broken-{cell}.xlsx"
        book = openpyxl.load_workbook(path)
        book["attn"][cell] = book["attn"][cell].value.replace("/", "*", 1)
        book.save(broken)
        [report] = check(broken)
        failed = [(b.tensor, b.worst_cell) for b in report.blocks if b.status == "fail"]
        assert failed == [(block, f"attn!{cell}")], report.text()


@needs_gnumeric
def test_gnumeric_computes_the_same_cells(tmp_path):
    [report] = check(_attention_book(tmp_path / "attention.xlsx"), engine="gnumeric")
    assert report.passed, report.text()


def test_the_udf_is_torchs_attention_and_names_bad_arguments():
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    want = F.scaled_dot_product_attention(*(torch.tensor(a)[None] for a in (q, k, v)), is_causal=True)[0].numpy()
    np.testing.assert_allclose(udfs.XLNET_ATTENTION(q, k, v), want, rtol=1e-13)
    full = F.scaled_dot_product_attention(*(torch.tensor(a)[None] for a in (q, k, v)))[0].numpy()
    np.testing.assert_allclose(udfs.XLNET_ATTENTION(q, k, v, False), full, rtol=1e-13)
    assert udfs.XLNET_ATTENTION(q, k[:, :2], v).startswith("xlnet: q is 4x3 and k is 4x2")
    assert "one value per key" in udfs.XLNET_ATTENTION(q, k, v[:3])
    assert "TRUE or FALSE" in udfs.XLNET_ATTENTION(q, k, v, "yes")
    assert "blank" in udfs.XLNET_ATTENTION(np.array([[1.0, None, 2.0]] * 4, dtype=object), k, v)
