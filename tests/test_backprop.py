"""The backpropagation workbook: a CNN and an MLP trained in cells, every forward and backward
block against torch's autograd, every band against an nn.Module trained by torch.optim.SGD."""

import numpy as np
import pytest
from hypothesis import assume, HealthCheck, Phase, given, settings, strategies as st

import xlnet
from xlnet.workbook import legibility
from xlnet import ops
from xlnet.cli import main
from conftest import (check, assert_every_block_checked, break_formula, edit, needs_gnumeric, needs_libreoffice,
                      recalculated, statuses, tensor_cell)

BACKWARD_OPS = {"cross_entropy_backward", "linear_grad_weight", "linear_grad_bias", "linear_grad_input",
                "max_pool2d_backward", "relu_backward", "conv2d_grad_weight", "conv2d_grad_bias", "sgd_update"}


def _torch_run(t, steps, prefix="", conv=True):
    """Train the sheet's network from the sheet's own starting values with torch.optim.SGD;
    return the parameters after each step and the loss before it."""
    import torch
    import torch.nn.functional as F

    def tensor(name):
        return torch.tensor(t[name].values, dtype=torch.float64)

    if conv:
        names = ["conv_w", "conv_b", "dense_w", "dense_b"]
        x, target, lr = tensor("images"), tensor("labels").long(), float(t["lr"].values)
    else:
        names = ["hidden_w", "hidden_b", "out_w", "out_b"]
        x, target, lr = tensor("wine_std"), tensor("wine_class").long(), float(t["mlp_lr"].values)
    params = [tensor(n).requires_grad_(True) for n in names]
    optimizer = torch.optim.SGD(params, lr=lr)
    history = []
    for _ in range(steps):
        if conv:
            hidden = F.max_pool2d(torch.relu(F.conv2d(x, params[0], params[1])), 2).flatten(1)
            logits = F.linear(hidden, params[2], params[3])
        else:
            logits = F.linear(torch.relu(F.linear(x, params[0], params[1])), params[2], params[3])
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append((loss.item(), [p.detach().numpy().copy() for p in params]))
    return history


@needs_libreoffice
def test_libreoffice_recalc_passes_every_forward_and_backward_block(built):
    [report] = check(built["backprop"], engine="libreoffice")
    assert_every_block_checked(report, built["backprop"])
    checked = {b.op for b in report.blocks if b.status == "pass"}
    assert checked >= BACKWARD_OPS | {"conv2d", "relu", "max_pool2d", "linear", "cross_entropy_rows", "standardize"}
    assert {b.op for b in report.blocks if b.status == "e2e"} == {"train_cnn", "train_mlp"}
    assert all(b.e2e_pass for b in report.blocks)


@needs_gnumeric
def test_gnumeric_recalc_passes_every_block(built):
    [report] = check(built["backprop"], engine="gnumeric")
    assert_every_block_checked(report, built["backprop"])


@needs_libreoffice
def test_the_sheet_trains_as_torch_optim_sgd_does_and_the_loss_falls(built):
    t = recalculated(built["backprop"]).tensors
    for conv, prefix, names in ((True, "s", ["conv_w", "conv_b", "dense_w", "dense_b"]),
                                (False, "m", ["w1", "b1", "w2", "b2"])):
        history = _torch_run(t, 5, conv=conv)
        for step, (loss, params) in enumerate(history, start=1):
            assert t[f"{prefix}{step}_loss"].values == pytest.approx(loss, rel=1e-12)
            for name, want in zip(names, params):
                np.testing.assert_allclose(t[f"{prefix}{step}_new_{name}"].values, want, rtol=1e-10, atol=1e-13)
        assert history[-1][0] < 0.7 * history[0][0]  # it learns
    np.testing.assert_allclose(t["cnn_loss_history"].values, [t[f"s{s}_loss"].values for s in range(1, 6)])


@needs_libreoffice
def test_editing_lr_a_pixel_and_a_weight_changes_every_later_step(copy_of):
    path = copy_of("backprop")
    before = recalculated(path).tensors
    edit(path, {tensor_cell(path, "lr"): 0.2, tensor_cell(path, "images", 20): 1.0,
                tensor_cell(path, "conv_w", 4): 0.9, tensor_cell(path, "hidden_w", 0): -0.5})
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    after = recalculated(path).tensors
    assert after["images"].values.ravel()[20] == 1.0 and float(after["lr"].values) == 0.2
    for step in range(1, 6):
        assert not np.allclose(after[f"s{step}_new_dense_w"].values, before[f"s{step}_new_dense_w"].values)
        assert not np.allclose(after[f"m{step}_new_w1"].values, before[f"m{step}_new_w1"].values)
    history = _torch_run(after, 5)
    np.testing.assert_allclose(after["s5_new_conv_w"].values, history[-1][1][0], rtol=1e-10, atol=1e-13)


@needs_libreoffice
def test_a_broken_gradient_cell_fails_exactly_its_block(copy_of):
    path = copy_of("backprop")
    break_formula(path, "s2_dconv_w", 3, "SUMPRODUCT(", "0.5*SUMPRODUCT(")


@needs_libreoffice
def test_a_broken_update_cell_fails_exactly_its_block(copy_of):
    path = copy_of("backprop")
    break_formula(path, "s3_new_dense_w", 7, "-", "+")


@needs_libreoffice
def test_a_max_pool_gradient_that_ignores_ties_fails_its_block(copy_of):
    path = copy_of("backprop")
    # a window of four zeros (paper) is a four-way tie: torch routes its gradient to the first
    t = xlnet.load(path).tensors
    relu, grad = t["s1_relu"].values, t["s1_drelu"].values
    b, o, i, j = next(ix for ix in np.ndindex(*relu.shape)
                      if ix[2] % 2 == 1 and ix[3] % 2 == 1 and ix[2] < 2 * (relu.shape[2] // 2)
                      and ix[3] < 2 * (relu.shape[3] // 2)
                      and relu[ix[0], ix[1], ix[2] - 1:ix[2] + 1, ix[3] - 1:ix[3] + 1].max() == 0
                      and t["s1_dpool"].values[ix[0], ix[1], ix[2] // 2, ix[3] // 2] != 0)
    flat = int(np.ravel_multi_index((b, o, i, j), relu.shape))
    sheet, cell = tensor_cell(path, "s1_drelu", flat)
    import openpyxl
    book = openpyxl.load_workbook(path)
    formula = book[sheet][cell].value
    assert formula.startswith("=IF(AND(") and grad.ravel()[flat] == 0
    book[sheet][cell] = "=IF(" + formula[len("=IF(AND("):].split(",", 1)[0] + "," + formula.rsplit(",", 2)[-2] + ",0)"
    book.save(path)
    [report] = check(path, engine="libreoffice")
    failed = [r for r in report.blocks if r.status == "fail"]
    assert [r.tensor for r in failed] == ["s1_drelu"] and failed[0].worst_cell == f"{sheet}!{cell}", report.text()


def test_max_pool_gradient_goes_to_the_first_of_tied_maxima_as_torch():
    import torch
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (3, 2, 6, 7)).astype(np.float64)  # small integers: many exact ties
    grad = rng.normal(size=(3, 2, 3, 3))
    want = ops.MaxPool2dBackward.reference({"x": torch.tensor(x), "grad": torch.tensor(grad)}, {"kernel_size": 2})
    np.testing.assert_array_equal(ops.MaxPool2dBackward.cached({"x": x, "grad": grad}, {"kernel_size": 2}),
                                  want.numpy())


@needs_libreoffice
@settings(deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(batch=st.integers(1, 5), kernel=st.integers(1, 5), filters=st.integers(1, 3), steps=st.integers(1, 3),
       seed=st.integers(0, 1000), ties=st.booleans())
def test_random_sizes_train_as_torch(tmp_path, batch, kernel, filters, steps, seed, ties):
    out = tmp_path / f"b{batch}-k{kernel}-f{filters}-s{steps}-{seed}-{ties}"
    [path] = xlnet.build(["backprop"], out=out, seed=seed, batch_size=batch, kernel_size=kernel, filters=filters,
                         steps=steps, hidden=2, wine_rows=4)
    assert [str(p) for p in legibility.problems(path)] == []  # read whole, whatever the settings
    if ties:  # flat patches of ink: equal windows, so equal maxima inside the pooling windows
        # a kernel whose weights sum to exactly 0 would put a flat patch on ReLU's kink instead (z = 0,
        # which the sheet and torch may round to opposite sides): a different case from a tie
        kernels = xlnet.load(path).tensors["conv_w"].values
        assume(not np.any(np.round(kernels.reshape(len(kernels), -1).sum(axis=1), 9) == 0))
        images = xlnet.load(path).tensors["images"]
        changes = {}
        for b in range(images.values.shape[0]):
            for i in range(2, 8):
                for j in range(0, 8):
                    sheet, cell = images.address(np.ravel_multi_index((b, 0, i, j), images.values.shape)).split("!")
                    changes[(sheet, cell)] = 0.75
        edit(path, changes)
    [report] = check(path, engine="libreoffice")
    assert_every_block_checked(report, path)


@pytest.mark.parametrize("options, message", [
    ({"digits": "1,two"}, "whole numbers"),
    ({"digits": "5000"}, "outside 0 to 1796"),
    ({"digits": "0,1", "batch_size": 3}, "--batch-size 3 but --digits names 2"),
    ({"digits": ","}, "at least one"),
    ({"steps": 0}, "--steps"),
    ({"lr": 0.0}, "--lr"),
    ({"lr": float("nan")}, "--lr"),
    ({"kernel_size": 7}, "--kernel-size"),
    ({"hidden": 0}, "--hidden"),
    ({"wine_rows": 2}, "--wine-rows"),
    ({"batch_size": 65}, "--batch-size"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, capsys, options, message):
    argv = ["build", "backprop", "--out", str(tmp_path / "out")]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out" / "backprop.xlsx").exists()


def test_digits_choose_the_batch_and_the_labels_come_from_scikit_learn(tmp_path):
    from sklearn.datasets import load_digits
    [path] = xlnet.build(["backprop"], out=tmp_path, digits="10,42,7", steps=1)
    t = xlnet.load(path).tensors
    digits = load_digits()
    np.testing.assert_array_equal(t["labels"].values, digits.target[[10, 42, 7]])
    np.testing.assert_array_equal(t["images"].values[:, 0], digits.images[[10, 42, 7]] / 16)
    assert t["s1_conv"].values.shape[0] == 3


def test_every_gradient_sits_under_its_forward_block_with_its_shape(built):
    t = xlnet.load(built["backprop"]).tensors
    for forward, backward in (("s1_conv", "s1_dconv"), ("s1_relu", "s1_drelu"), ("s1_pool", "s1_dpool"),
                              ("s1_logits", "s1_dlogits"), ("s1_flat", "s1_dflat"), ("m1_z1", "m1_dz1"),
                              ("m1_h", "m1_dh"), ("m1_logits", "m1_dlogits")):
        f, b = t[forward], t[backward]
        assert f.values.shape == b.values.shape
        assert f.address(0).split("!")[1].rstrip("0123456789") == b.address(0).split("!")[1].rstrip("0123456789")
        assert int(b.address(0).split("!")[1].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) > \
            int(f.address(0).split("!")[1].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def test_the_workbook_has_a_loss_and_accuracy_chart_on_each_sheet(built):
    import openpyxl
    book = openpyxl.load_workbook(built["backprop"])
    manifest = xlnet.load(built["backprop"]).manifest
    assert [c["name"] for c in manifest["charts"]] == ["cnn_training", "mlp_training"]
    assert len(book["cnn"]._charts) == 1 and len(book["mlp"]._charts) == 1
    assert book["cnn"]["C5"].value == 0.5 and book["cnn"]["C5"].fill.fgColor.rgb.endswith("FFF2CC")
