"""The convolution workbook: built, recalculated by real engines, checked block by block."""

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings, strategies as st

import xlnet
from xlnet.workbook import legibility
from xlnet.errors import InputError
from conftest import (LESSONS, check, assert_every_block_checked, edit, needs_gnumeric, needs_libreoffice, recalculated,
                      statuses, tensor_cell)


@needs_libreoffice
def test_libreoffice_recalc_passes_every_block(built):
    [report] = check(built["conv"], engine="libreoffice")
    assert report.passed, report.text()
    blocks = statuses(report)
    assert len(blocks) >= 17 and set(blocks.values()) == {"pass"}
    assert {b.op for b in report.blocks} >= {"conv2d", "relu", "max_pool2d", "flatten", "linear",
                                               "softmax", "dropout", "conv_matrix"}
    assert max(b.max_abs for b in report.blocks if b.status == "pass") < 1e-9


@needs_gnumeric
def test_gnumeric_recalc_passes_every_block(built):
    [report] = check(built["conv"], engine="gnumeric")
    assert report.passed, report.text()


def test_formulas_engine_passes_every_block(built):
    pytest.importorskip("formulas")
    [report] = check(built["conv"], engine="formulas")
    assert report.passed, report.text()


@needs_libreoffice
def test_edited_inputs_are_read_back_and_still_pass(copy_of):
    import torch
    import torch.nn.functional as F

    path = copy_of("conv")
    before = xlnet.load(path).tensors["conv1_out"].values.copy()
    changes = {tensor_cell(path, "image", 0): 1.0, tensor_cell(path, "image", 9): 0.5,
               tensor_cell(path, "conv1_w", 4): 2.5, tensor_cell(path, "dropout_p", 0): 0.25}
    edit(path, changes)
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    # the recalculated block is torch's convolution of the edited inputs, and differs from before
    t = recalculated(path).tensors
    assert t["image"].values[0, 0, 0] == 1.0 and t["image"].values[0, 1, 1] == 0.5
    assert t["conv1_w"].values.ravel()[4] == 2.5 and t["dropout_p"].values == 0.25
    want = F.relu(F.conv2d(torch.tensor(t["image"].values)[None], torch.tensor(t["conv1_w"].values)))[0].numpy()
    np.testing.assert_allclose(t["conv1_out"].values, want, rtol=1e-12, atol=1e-12)
    assert not np.allclose(t["conv1_out"].values, before)


@needs_libreoffice
def test_a_broken_formula_fails_exactly_its_block_and_names_the_cell(copy_of):
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "conv2_pre", 5)
    _, weight = tensor_cell(path, "conv2_w", 0)
    edit(path, {(sheet, cell): f"=1.5+{weight}"})  # reads an input of its op, and is wrong
    [report] = check(path, engine="libreoffice")
    assert not report.passed
    failed = [b for b in report.blocks if b.status == "fail"]
    assert [b.tensor for b in failed] == ["conv2_pre"]
    assert failed[0].worst_cell == f"{sheet}!{cell}"
    assert all(s == "pass" for t, s in statuses(report).items() if t != "conv2_pre")
    assert any(not b.e2e_pass for b in report.blocks)  # the end-to-end pass sees it too


@needs_libreoffice
def test_a_formula_reading_none_of_its_inputs_is_not_a_computation(copy_of):
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "conv2_pre", 5)
    edit(path, {(sheet, cell): "=1.5"})
    [report] = check(path, engine="libreoffice")
    assert statuses(report)["conv2_pre"] == "values" and not report.passed
    block = next(b for b in report.blocks if b.tensor == "conv2_pre")
    assert "read none of the block's inputs" in block.message and block.worst_cell == f"{sheet}!{cell}"


@needs_libreoffice
def test_error_value_in_a_computed_block_fails_that_block_and_skips_its_readers(copy_of):
    path = copy_of("conv")
    sheet, cell = tensor_cell(path, "logits", 3)
    _, bias = tensor_cell(path, "dense_b", 3)
    edit(path, {(sheet, cell): f"={bias}/0"})
    [report] = check(path, engine="libreoffice")
    by_tensor = statuses(report)
    assert by_tensor["logits"] == "fail"
    assert by_tensor["exps"] == "skip"
    fail = next(b for b in report.blocks if b.tensor == "logits")
    assert "#DIV/0!" in fail.message and fail.worst_cell == f"{sheet}!{cell}"


@needs_libreoffice
@settings(deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(size=st.integers(6, 14), kernel=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 1), filters1=st.integers(1, 3), filters2=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_random_shapes_equal_torch(tmp_path, size, kernel, stride, padding, filters1, filters2, seed):
    out = tmp_path / f"s{seed}-{size}-{kernel}-{stride}-{padding}-{filters1}-{filters2}"
    try:
        [path] = xlnet.build(["conv"], out=out, seed=seed, size=size, kernel_size=kernel, stride=stride,
                             padding=padding, filters1=filters1, filters2=filters2, pool=1 if size < 10 else 2,
                             untrained=True)  # the arithmetic of every shape; trained shapes are tested below
        assert [str(p) for p in legibility.problems(path)] == []  # read whole, whatever the settings
    except InputError as exc:  # a shape that leaves nothing after the second layer is refused
        assert "leaves nothing" in str(exc)
        assume(False)
    [report] = check(path, engine="libreoffice")
    assert_every_block_checked(report, path)


def test_user_image_from_csv_png_and_npy(tmp_path):
    import matplotlib.image
    img = np.linspace(0, 255, 100).reshape(10, 10)
    np.savetxt(tmp_path / "img.csv", img, delimiter=",")
    np.save(tmp_path / "img.npy", img)
    matplotlib.image.imsave(tmp_path / "img.png", img, cmap="gray")
    for name in ("img.csv", "img.npy", "img.png"):
        [path] = xlnet.build(["conv"], out=tmp_path / name.replace(".", "_"), image=str(tmp_path / name),
                             untrained=True)  # reading the image is the point: no weights to train
        values = xlnet.load(path).tensors["image"].values
        assert values.shape == (1, 10, 10)
        assert values.max() == pytest.approx(1.0, abs=1e-3) and values.min() == pytest.approx(0.0, abs=1e-3)


def test_workbook_has_a_defined_name_per_tensor_and_a_heat_map(built):
    import openpyxl
    book = openpyxl.load_workbook(built["conv"])
    manifest = xlnet.load(built["conv"]).manifest
    for name, info in manifest["tensors"].items():
        assert name in book.defined_names
        for tile in info["tiles"]:
            assert tile in book.defined_names
    assert len(book["conv"].conditional_formatting) >= 10
    formulas = [c.value for row in book["conv"].iter_rows() for c in row if isinstance(c.value, str)
                and c.value.startswith("=")]
    assert any(f.startswith("=MAX(0,SUMPRODUCT(") for f in formulas)



@pytest.mark.parametrize("lesson", LESSONS)
def test_every_formula_of_every_workbook_is_portable(built, lesson):
    import openpyxl
    book = openpyxl.load_workbook(built[lesson])
    count = 0
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value.startswith("="):
                    count += 1
                    for banned in ("_XLFN", "OFFSET(", "INDIRECT(", "RAND(", "RANDBETWEEN(", "LAMBDA(", "LET(",
                                   "TODAY(", "NOW(", "XLOOKUP(", "FILTER(", "SEQUENCE("):
                        assert banned not in c.value.upper(), (ws.title, c.coordinate, c.value)
    assert count > 100


def test_the_default_network_is_trained_and_reads_its_held_out_seven(built):
    from xlnet.lessons import conv_training
    book = xlnet.load(built["conv"])
    t = book.tensors
    assert t["predicted"].values == 7 == t["true_label"].values and t["prediction_right"].values == 1
    assert t["probs"].values[7] > 0.5
    assert conv_training.held_out(7)
    shipped = conv_training.weights_for((8, 8), book.manifest["settings"])
    np.testing.assert_array_equal(t["conv1_w"].values, shipped["conv1_w"])
    np.testing.assert_array_equal(t["dense_w"].values, shipped["dense_w"])
    import openpyxl
    intro = openpyxl.load_workbook(built["conv"])["conv"]["A2"].value
    assert f"{shipped['accuracy']:.1%}" in intro and "held out" in intro and shipped["accuracy"] > 0.8


def test_the_shipped_weights_are_what_the_training_script_makes():
    """On this torch; the file is what keeps the default workbook the same on any other. The
    default shape is trained again here; the example's larger one is only matched by its shape."""
    from xlnet.lessons import conv, conv_training
    defaults = {o.name: o.default for o in conv.OPTIONS}
    shipped = conv_training.shipped()
    assert [e["shape"] for e in shipped] == [conv_training.shape_key(side, {**defaults, **changed})
                                             for side, changed in conv_training.SHIPPED]
    assert conv_training.train((8, 8), defaults) == shipped[0]


def test_the_custom_example_builds_with_shipped_weights(tmp_path, monkeypatch):
    from xlnet.lessons import conv_training
    monkeypatch.setattr(conv_training, "train", lambda *a: pytest.fail("trained a shape whose weights ship"))
    [path] = xlnet.build(["conv"], out=tmp_path, seed=7, digit=42, size=16, kernel_size=5, padding=2,
                         filters1=4, filters2=3)
    assert xlnet.load(path).tensors["conv1_w"].values.shape == (4, 1, 5, 5)


def test_untrained_keeps_the_edge_filters(tmp_path):
    from xlnet.cli import main
    from xlnet.lessons.conv import edge_kernels
    assert main(["build", "conv", "--untrained", "--out", str(tmp_path)]) == 0
    t = xlnet.load(tmp_path / "conv.xlsx").tensors
    np.testing.assert_array_equal(t["conv1_w"].values, edge_kernels(2, 3, np.random.default_rng(0)))


def test_another_shape_is_trained_when_built_deterministically_and_cached(tmp_path, monkeypatch):
    import json
    from xlnet.lessons import conv, conv_training
    monkeypatch.setenv("XLNET_CACHE_DIR", str(tmp_path / "cache"))
    first = xlnet.build(["conv"], out=tmp_path / "a", filters1=3, filters2=4)[0]
    [cached] = (tmp_path / "cache").iterdir()
    t = xlnet.load(first).tensors
    assert t["conv1_w"].values.shape == (3, 1, 3, 3) and t["probs"].values.argmax() == 7
    options = {**{o.name: o.default for o in conv.OPTIONS}, "filters1": 3, "filters2": 4}
    assert conv_training.train((8, 8), options) == json.loads(cached.read_text())  # the same again
    monkeypatch.setattr(conv_training, "train", lambda *a: pytest.fail("trained a shape already in the cache"))
    second = xlnet.build(["conv"], out=tmp_path / "b", filters1=3, filters2=4)[0]
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_a_rectangular_image_gets_weights_trained_for_its_shape(tmp_path):
    np.savetxt(tmp_path / "rect.csv", np.random.default_rng(0).random((10, 12)), delimiter=",")
    [path] = xlnet.build(["conv"], out=tmp_path, image=str(tmp_path / "rect.csv"))
    t = xlnet.load(path).tensors
    assert t["flat"].values.shape == (24,) and t["dense_w"].values.shape == (10, 24)
    assert "true_label" not in t  # a user's image has no label to compare with
