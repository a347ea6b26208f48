"""The bridge's ops against torch's own functions, and the comparison rules."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xlnet.checking import exercises, tolerance
from xlnet import ops
from xlnet.workbook.read import SheetTensor


def run(name, attrs=None, **inputs):
    op = ops.get(name)
    args = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in inputs.items()}
    return op.reference(args, op.resolve_attrs(attrs, "test"))


def cached(op, attrs=None, **inputs):
    return op.cached(inputs, op.resolve_attrs(attrs, "test"))


def test_dropout_with_a_given_mask_is_torch_dropout():
    x = torch.rand(6, 6, dtype=torch.float64) + 0.1
    torch.manual_seed(0)
    dropped = F.dropout(x, p=0.3, training=True)
    mask = (dropped != 0).double()
    np.testing.assert_allclose(run("dropout", x=x, mask=mask, p=0.3), dropped, rtol=1e-15, atol=0)


def test_conv_matrix_times_image_is_the_convolution():
    rng = np.random.default_rng(0)
    kernel, image = rng.normal(size=(3, 3)), rng.normal(size=(6, 7))
    matrix = run("conv_matrix", {"in_h": 6, "in_w": 7, "stride": 2}, weight=kernel).numpy()
    direct = F.conv2d(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None], stride=2)
    np.testing.assert_allclose(matrix @ image.ravel(), direct.numpy().ravel(), rtol=1e-12)
    np.testing.assert_array_equal(matrix, cached(ops.ConvMatrix, {"in_h": 6, "in_w": 7, "stride": 2}, weight=kernel))


def test_numpy_reference_equals_torch_conv_and_pool():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 9, 8)), rng.normal(size=(3, 2, 3, 3))
    torch_conv = run("conv2d", {"stride": 2}, x=x, weight=w).numpy()
    np.testing.assert_allclose(cached(ops.Conv2d, {"stride": 2}, x=x, weight=w), torch_conv, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cached(ops.MaxPool2d, {"kernel_size": 2}, x=x), run("max_pool2d", {"kernel_size": 2}, x=x).numpy())


def test_compare_names_the_worst_cell_and_applies_tolerance():
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    sheet = SheetTensor("t", values.copy(), {}, ["s!A1", "s!B1", "s!A2", "s!B2"])
    ok = tolerance.compare(sheet, values + 1e-12, [], tolerance.DEFAULT_TOL)
    assert ok[0] is True
    sheet.values[1, 0] = 3.001
    passed, max_abs, _, worst, message = tolerance.compare(sheet, values, [], tolerance.DEFAULT_TOL)
    assert not passed and worst == 2 and sheet.address(worst) == "s!A2"
    assert max_abs == pytest.approx(0.001)


def test_compare_expected_errors():
    sheet = SheetTensor("t", np.array([np.nan, 0.5]), {0: "#NUM!"}, ["s!A1", "s!B1"])
    assert tolerance.compare(sheet, np.array([np.inf, 0.5]), [(0,)], tolerance.DEFAULT_TOL)[0]
    # an error where a number is expected fails, naming the code
    result = tolerance.compare(sheet, np.array([1.0, 0.5]), [], tolerance.DEFAULT_TOL)
    assert not result[0] and "#NUM!" in result[4]
    # a number where an overflow is expected fails too
    plain = SheetTensor("t", np.array([1.0, 0.5]), {}, ["s!A1", "s!B1"])
    assert not tolerance.compare(plain, np.array([np.inf, 0.5]), [(0,)], tolerance.DEFAULT_TOL)[0]


def test_a_block_and_its_exercise_cells_are_judged_by_one_rule():
    values = np.array([1.0, 2.0 + 1e-6, np.nan, np.nan, 5.0])
    sheet = SheetTensor("t", values, errors={2: "#NUM!", 3: "blank"}, cells=[f"s!A{k + 1}" for k in range(5)])
    torch_values = np.array([1.0, 2.0, np.inf, 3.0, 5.0 + 1e-12])
    right, _, _ = tolerance.agreement(sheet, torch_values, [(2,)], tolerance.DEFAULT_TOL)
    assert right.tolist() == [True, False, True, False, True]  # off by 1e-6; an overflow meant; empty
    passed, *_ = tolerance.compare(sheet, torch_values, [(2,)], tolerance.DEFAULT_TOL)
    graded = exercises.grade("t", "t", {"shape": [5]}, sheet, torch_values, tolerance.DEFAULT_TOL, lambda k: "", [(2,)])
    assert not passed and graded.right == 3 and graded.first_cell == "s!A2"
    loose = {"rtol": 1e-3, "atol": 1e-3}  # the same looser tolerance frees the same cell in both
    assert tolerance.agreement(sheet, torch_values, [(2,)], loose)[0].tolist() == [True, True, True, False, True]
    assert exercises.grade("t", "t", {"shape": [5]}, sheet, torch_values, loose, lambda k: "", [(2,)]).right == 4
