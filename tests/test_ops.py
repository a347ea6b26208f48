"""Ops defined once: a new op (avg_pool2d) placed with one call and checked in a real engine,
build-time validation of every op call, explicit dependencies (op order carries no meaning),
a build that imports no torch, and one option list for every lesson."""

import random
import subprocess
import sys

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

import xlnet
from xlnet.checking import bridge
from xlnet import lessons, manifest as manifest_mod, ops
from xlnet.errors import LayoutError, ManifestError
from xlnet.sheet.book import Book
from conftest import check, needs_libreoffice, recalculated


def _pool_book(path, op=ops.AvgPool2d):
    """A small hand-laid workbook: an image, a conv with ReLU, and a 2x2 pool placed by one call each."""
    rng = np.random.default_rng(0)
    book = Book("custom", {"seed": 0})
    sheet = book.sheet("pool", "Average pooling", "A 6x6 image, a 3x3 kernel, ReLU, then a 2x2 average pool.")
    image = sheet.place("img", (1, 6, 6), row=3, col=1, role="input", values=np.round(rng.random((1, 6, 6)), 2),
                        caption="image")
    kernel = sheet.place("k", (1, 1, 3, 3), row=3, col=9, role="parameter",
                         values=np.round(rng.normal(size=(1, 1, 3, 3)), 2), caption="kernel")
    conv = sheet.apply(ops.Conv2d(x=image, weight=kernel, relu=True), "conv", row=11, col=1, caption="conv + ReLU")
    sheet.apply(op(x=conv, kernel_size=2), "pooled", row=11, col=7, caption="pool")
    book.save(path)
    return path


def test_avg_pool2d_is_defined_once_and_agrees_with_torch():
    x = np.random.default_rng(1).normal(size=(2, 7, 6))
    at = ops.AvgPool2d.resolve_attrs({"kernel_size": 2}, "test")
    reference = ops.AvgPool2d.reference({"x": torch.tensor(x)}, at).numpy()
    np.testing.assert_allclose(reference, F.avg_pool2d(torch.tensor(x)[None], 2)[0].numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(ops.AvgPool2d.cached({"x": x}, at), reference, rtol=1e-15, atol=1e-15)
    assert ops.AvgPool2d.shape({"x": (2, 7, 6)}, at) == (2, 3, 3)


@needs_libreoffice
def test_a_new_op_is_written_recalculated_and_checked(tmp_path):
    path = _pool_book(tmp_path / "pool.xlsx")
    cell = openpyxl.load_workbook(path)["pool"]["H14"].value
    assert cell == "=AVERAGE(B14:C15)"
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    assert [b.op for b in report.blocks] == ["conv2d", "avg_pool2d"]
    # an AVERAGE written as a MAX (the other pool) fails exactly that block, at that cell
    book = openpyxl.load_workbook(path)
    book["pool"]["H14"] = "=MAX(B14:C15)"
    book.save(path)
    [report] = check(path, engine="libreoffice")
    failed = [b for b in report.blocks if b.status == "fail"]
    assert [(b.tensor, b.worst_cell) for b in failed] == [("pooled", "pool!H14")], report.text()


def _sheet():
    book = Book("t", {})
    sheet = book.sheet("s", "t", "i")
    x = sheet.place("x", (1, 4, 4), row=3, col=1, role="input", values=np.ones((1, 4, 4)), caption="x")
    return book, sheet, x


@pytest.mark.parametrize("call, message", [
    (lambda x: ops.MaxPool2d(x=x), "needs the attribute 'kernel_size'"),
    (lambda x: ops.MaxPool2d(x=x, kernel_size="two"), "should be of type int"),
    (lambda x: ops.MaxPool2d(x=x, kernel_size=2, dilation=2), "unknown input 'dilation'"),
    (lambda x: ops.Relu(x=x, y=x), "unknown input 'y'"),
    (lambda x: ops.Linear(weight=x), "lacks input 'x'"),
    (lambda x: ops.Softmax(x=x), "composite op"),
])
def test_a_wrong_op_call_is_refused_when_the_workbook_is_built(call, message):
    _, sheet, x = _sheet()
    with pytest.raises(LayoutError, match=message):
        sheet.apply(call(x), "out", row=10, col=1, caption="out")


def test_a_shape_the_op_does_not_make_is_refused_at_build():
    book, sheet, x = _sheet()
    pooled = sheet.apply(ops.MaxPool2d(x=x, kernel_size=2), "pooled", row=10, col=1, caption="pooled")
    with pytest.raises(LayoutError, match=r"makes shape \(1, 4, 4\).*pooled has shape \(1, 2, 2\)"):
        book.record(ops.Relu(x=x), {"out": pooled})


def test_the_manifest_names_unknown_ops_and_cycles(built):
    manifest = xlnet.load(built["conv"]).manifest
    broken = dict(manifest, ops=[dict(manifest["ops"][0], op="maxpool")])
    with pytest.raises(ManifestError, match="op 'maxpool' is unknown"):
        manifest_mod.validate(broken, "book.xlsx")
    # two block ops reading each other, with no trajectory to break the cycle
    relu = next(e for e in manifest["ops"] if e["op"] == "relu")
    cycle = dict(manifest, ops=[relu, dict(relu, op="copy", inputs={"x": relu["outputs"]["out"]},
                                           outputs={"out": relu["inputs"]["x"]}, title="back")])
    with pytest.raises(ManifestError, match="cycle"):
        manifest_mod.validate(cycle, "book.xlsx")


@needs_libreoffice
@pytest.mark.parametrize("lesson", ["graddesc", "embeddings"])
def test_the_order_of_the_ops_carries_no_meaning(built, lesson):
    book = recalculated(built[lesson])
    book.path = built[lesson]
    straight = bridge.check_workbook(book, "cpu", "libreoffice")
    assert straight.passed, straight.text()
    shuffled = list(book.manifest["ops"])
    random.Random(0).shuffle(shuffled)
    book.manifest = dict(book.manifest, ops=shuffled)
    report = bridge.check_workbook(book, "cpu", "libreoffice")
    assert report.passed, report.text()
    key = lambda b: (b.title, b.status)  # noqa: E731
    assert sorted(map(key, report.blocks)) == sorted(map(key, straight.blocks))
    assert len(report.blocks) > 50


def test_building_imports_no_torch(tmp_path):
    code = ("import sys, xlnet; xlnet.build(['conv', 'softmax', 'graddesc', 'embeddings'], out=sys.argv[1]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lessons_may_share_an_option_only_with_one_type():
    from types import SimpleNamespace
    a = SimpleNamespace(OPTIONS=[lessons.Option("epochs", int, 8, "a")])
    b = SimpleNamespace(OPTIONS=[lessons.Option("epochs", float, 1.0, "b")])
    with pytest.raises(TypeError, match="--epochs is a int in one lesson and a float in another"):
        lessons._merge_options({"a": a, "b": b})
    assert [o.help for o in lessons._merge_options({"a": a, "c": a})["epochs"]] == ["a"]
    assert {"epochs", "lr", "kernel_size"} <= set(lessons.all_options())


def test_every_op_has_a_reference_and_placed_ops_a_formula_and_values():
    for name, op in ops.REGISTRY.items():
        assert type(op).reference is not ops.Op.reference, name
        if not op.composite and not op.spec_only:
            assert type(op).formula is not ops.Op.formula, name
        assert op.__doc__, name
