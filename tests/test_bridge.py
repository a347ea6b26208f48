"""The bridge's ops against torch's own functions, and the comparison rules."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xlnet.checking import bridge
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
    ok = bridge.compare(sheet, values + 1e-12, [], bridge.DEFAULT_TOL)
    assert ok[0] is True
    sheet.values[1, 0] = 3.001
    passed, max_abs, _, worst, message = bridge.compare(sheet, values, [], bridge.DEFAULT_TOL)
    assert not passed and worst == 2 and sheet.address(worst) == "s!A2"
    assert max_abs == pytest.approx(0.001)


def test_compare_expected_errors():
    sheet = SheetTensor("t", np.array([np.nan, 0.5]), {0: "#NUM!"}, ["s!A1", "s!B1"])
    assert bridge.compare(sheet, np.array([np.inf, 0.5]), [(0,)], bridge.DEFAULT_TOL)[0]
    # an error where a number is expected fails, naming the code
    result = bridge.compare(sheet, np.array([1.0, 0.5]), [], bridge.DEFAULT_TOL)
    assert not result[0] and "#NUM!" in result[4]
    # a number where an overflow is expected fails too
    plain = SheetTensor("t", np.array([1.0, 0.5]), {}, ["s!A1", "s!B1"])
    assert not bridge.compare(plain, np.array([np.inf, 0.5]), [(0,)], bridge.DEFAULT_TOL)[0]
