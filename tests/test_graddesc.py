"""The gradient-descent workbook: every optimizer's trajectory equals torch.optim's, step by
step, after a real recalculation."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import xlnet
from xlnet.workbook import legibility
from xlnet.errors import InputError
from xlnet.ops.optim import OPTIMIZERS
from conftest import check, assert_every_block_checked, assert_edited_cell_refused, break_formula, edit, needs_gnumeric, needs_libreoffice, recalculated, tensor_cell

PREFIX = {name: optimizer.prefix for name, optimizer in OPTIMIZERS.items()}


def _torch_optimizer(name, params, h):
    """torch.optim's own optimizer for each sheet, written out here and not taken from xlnet."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=h["lr"])
    if name == "momentum":  # the sheet's v = beta*v + (1-beta)*g: torch's dampening = beta
        return torch.optim.SGD(params, lr=h["lr"], momentum=h["beta"], dampening=h["beta"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=h["lr"], alpha=h["alpha"], eps=h["eps"])
    if name == "adam":
        return torch.optim.Adam(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                 weight_decay=h["weight_decay"])
    if name == "adam_annealed":  # with an ExponentialLR(gamma) stepped at each epoch's end, below
        return torch.optim.Adam(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    return None  # adam_uncorrected: torch.optim has no such option; its update is written below


def torch_run(book, optimizer):
    """The run torch computes from the values the recalculated sheet holds in its cells."""
    t = {k: v.values for k, v in book.tensors.items()}
    p = PREFIX[optimizer]
    h = {k: float(t[f"{p}_{k}"]) for k in ("lr", "beta", "alpha", "beta1", "beta2", "eps", "weight_decay", "gamma")
         if f"{p}_{k}" in t}
    x, y = torch.tensor(t["data_x"]), torch.tensor(t["data_y"])
    n, bs, epochs = x.numel(), int(t["batch_size"]), int(t["epochs"])
    params = torch.tensor([float(t["start_a"]), float(t["start_b"])], dtype=torch.float64, requires_grad=True)
    opt = _torch_optimizer(optimizer, [params], h)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=h["gamma"]) if "gamma" in h else None
    per_epoch = -(-n // bs)
    m = v = torch.zeros(2, dtype=torch.float64)
    run = {k: [] for k in ("a", "b", "new_a", "new_b", "da", "db", "loss")}
    for step, start in enumerate(list(range(0, n, bs)) * epochs, 1):
        params.grad = None
        loss = ((params[0] * x[start:start + bs] + params[1] - y[start:start + bs]) ** 2).mean()
        loss.backward()
        for key, value in (("a", params[0]), ("b", params[1]), ("da", params.grad[0]), ("db", params.grad[1]),
                           ("loss", loss)):
            run[key].append(value.item())
        if opt is not None:
            opt.step()
        else:
            with torch.no_grad():
                m = h["beta1"] * m + (1 - h["beta1"]) * params.grad
                v = h["beta2"] * v + (1 - h["beta2"]) * params.grad ** 2
                params -= h["lr"] * m / (v.sqrt() + h["eps"])
        run["new_a"].append(params[0].item())
        run["new_b"].append(params[1].item())
        if scheduler is not None and step % per_epoch == 0:
            scheduler.step()
    return {k: np.array(values) for k, values in run.items()}


def assert_trajectories_match(book):
    for optimizer, p in PREFIX.items():
        run = torch_run(book, optimizer)
        for key in ("a", "b", "new_a", "new_b", "da", "db", "loss"):
            np.testing.assert_allclose(book.tensors[f"{p}_{key}"].values, run[key], rtol=1e-9, atol=1e-9,
                                       err_msg=f"{optimizer} {key}")


@needs_libreoffice
def test_libreoffice_every_optimizer_matches_torch_optim(built):
    [report] = check(built["graddesc"], engine="libreoffice")
    assert report.passed, report.text()
    runs = {b.title.split(":")[0] for b in report.blocks if b.op == "fit_line"}
    assert runs == set(OPTIMIZERS)
    assert {"mse_grad", "mse_fd", "ewma", "bias_correct", "adam_update", "rmsprop_update", "sgd_update",
            "rmse", "carry"} <= {b.op for b in report.blocks}  # every row a step: no row looked up by INDEX
    book = recalculated(built["graddesc"])
    assert_trajectories_match(book)
    sgd = book.tensors
    # a forward difference of the squared error is off by exactly h x mean(x^2) (its second derivative / 2)
    x, h = sgd["data_x"].values, float(sgd["sgd_h"].values)
    np.testing.assert_allclose(sgd["sgd_fd_a"].values - sgd["sgd_da"].values, h * np.mean(x ** 2), rtol=1e-6)
    # momentum's average starts at the first gradient, as torch's buffer does
    assert sgd["mom_v_a"].values[0] == sgd["mom_da"].values[0]


@needs_gnumeric
def test_gnumeric_passes(built):
    [report] = check(built["graddesc"], engine="gnumeric")
    assert report.passed, report.text()


@needs_libreoffice
def test_editing_the_learning_rate_beta_and_a_data_point_still_matches(copy_of):
    path = copy_of("graddesc")
    before = recalculated(path)
    edit(path, {tensor_cell(path, "sgd_lr"): 0.0001, tensor_cell(path, "mom_beta"): 0.5,
                tensor_cell(path, "adam_beta1"): 0.8, tensor_cell(path, "data_x", 3): 15})
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    after = recalculated(path)
    assert float(after.tensors["sgd_lr"].values) == 0.0001 and after.tensors["data_x"].values[3] == 15
    for name in ("sgd_new_a", "mom_new_b", "adam_new_a", "rms_new_b"):
        assert not np.allclose(after.tensors[name].values, before.tensors[name].values), name
    assert_trajectories_match(after)


@needs_libreoffice
def test_a_smaller_h_brings_the_finite_differences_closer(copy_of):
    path = copy_of("graddesc")
    edit(path, {tensor_cell(path, "sgd_h"): 1e-4})
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    book = recalculated(path)
    # 100 times smaller h, 100 times closer: the gap is h x mean(x^2), the squared error's curvature / 2
    gap = book.tensors["sgd_fd_a"].values - book.tensors["sgd_da"].values
    np.testing.assert_allclose(gap, 1e-4 * np.mean(book.tensors["data_x"].values ** 2), rtol=1e-3)


@needs_libreoffice
@pytest.mark.parametrize("tensor, index, old, new", [
    ("adam_m_a", 5, "(1-", "(2-"),        # a wrong average
    ("sgd_da", 7, "=2*", "=3*"),           # a wrong derivative
    ("rms_new_b", 2, "SQRT(", "("),        # forgetting the root
])
def test_one_broken_formula_fails_exactly_its_block(copy_of, tensor, index, old, new):
    break_formula(copy_of("graddesc"), tensor, index, old, new)


@needs_libreoffice
def test_an_edited_epoch_count_is_refused_with_the_cell(copy_of):
    assert_edited_cell_refused(copy_of("graddesc"), "epochs", 3, "--epochs 3")


@needs_libreoffice
@settings(deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(seed=st.integers(0, 10_000), points=st.integers(3, 12), batch_size=st.integers(1, 4),
       epochs=st.integers(1, 4), lr=st.sampled_from([0.00001, 0.00003, 0.00008]),  # x up to 100: small steps
       adaptive_lr=st.sampled_from([0.01, 0.3, 2.0]), beta=st.sampled_from([0.0, 0.5, 0.95]),
       beta2=st.sampled_from([0.9, 0.999]), noise=st.sampled_from([0.0, 2.0]))
def test_random_settings_match_torch_optim(tmp_path, seed, points, batch_size, epochs, lr, adaptive_lr, beta,
                                           beta2, noise):
    batch_size = min(batch_size, points)
    out = tmp_path / f"{seed}-{points}-{batch_size}-{epochs}-{lr}-{adaptive_lr}-{beta}-{beta2}-{noise}"
    [path] = xlnet.build(["graddesc"], out=out, seed=seed, points=points, batch_size=batch_size, epochs=epochs,
                         lr=lr, adaptive_lr=adaptive_lr, beta=beta, beta1=beta, beta2=beta2, noise=noise)
    assert [str(p) for p in legibility.problems(path)] == []  # read whole, whatever the settings
    [report] = check(path, engine="libreoffice")
    assert_every_block_checked(report, path)


@needs_libreoffice
def test_mini_batches_with_a_smaller_last_batch(tmp_path):
    [path] = xlnet.build(["graddesc"], out=tmp_path, points=10, batch_size=4, epochs=3)
    [report] = check(path, engine="libreoffice")
    assert report.passed, report.text()
    book = recalculated(path)
    assert book.tensors["sgd_a"].values.size == 9  # 3 steps per epoch: rows 1-4, 5-8, 9-10
    assert_trajectories_match(book)


def test_the_compare_sheet_charts_every_optimizer(built):
    manifest = xlnet.load(built["graddesc"]).manifest
    [chart] = [c for c in manifest["charts"] if c["name"] == "loss"]
    assert chart["kind"] == "line" and [s["label"] for s in chart["series"]] == list(PREFIX)
    assert manifest["tensors"]["rmse_all"]["shape"] == [len(PREFIX), 61]  # epoch 0 and 60 epochs


def test_bad_settings_are_refused(tmp_path):
    for options in ({"batch_size": 20, "points": 10}, {"beta": 1.0}, {"lr": 0.0}, {"h": 0.0}):
        with pytest.raises(InputError):
            xlnet.build(["graddesc"], out=tmp_path, **options)
    assert not list(tmp_path.iterdir())


def test_plot_draws_the_same_loss_chart(built, tmp_path, capsys):
    from xlnet.cli import main
    assert main(["plot", str(built["graddesc"]), "--charts-only", "--out", str(tmp_path)]) == 0
    charts = ["data_and_fits", "ema", "loss"] + [f"{name}_loss" for name in PREFIX]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"graddesc-{c}.png" for c in charts)
    # one line per optimizer, each the sheet's RMSE row, and a log scale as on the sheet
    from xlnet.report import plots
    book = xlnet.load(built["graddesc"])
    chart = next(c for c in book.manifest["charts"] if c["name"] == "loss")
    fig = plots.plot_chart(plots._figure_module(), chart, book.tensors)
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == list(PREFIX)
    for row, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_ydata(), book.tensors["rmse_all"].values[row])
    assert fig.axes[0].get_yscale() == "log"
