"""The xlwings UDFs, called the way xlwings calls them (2-D ndarrays, scalars as 1x1, blanks as
None), compared with torch and with the lesson workbooks' recalculated values."""

import tempfile

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

import xlnet
from xlnet import engines, udfs
from xlnet.workbook import read
from conftest import check, needs_libreoffice, require_engine


@pytest.fixture(scope="module")
def recalculated(built):
    require_engine("libreoffice")
    names = ["conv", "softmax", "graddesc"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = engines.recalc([built[n] for n in names], "libreoffice", tmp)
        return {n: read.read_workbook(p).tensors for n, p in zip(names, paths)}


def test_the_module_imports_without_excel():
    import subprocess
    import sys
    code = "import xlnet.udfs as u; print(u.XLNET_DEVICE())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu" or result.stdout.startswith("cuda: ")


def test_the_module_imports_without_xlwings_installed():
    import subprocess
    import sys
    code = ("import sys; sys.modules['xlwings'] = None\n"
            "import numpy as np, xlnet.udfs as u\n"
            "print(u.XLNET_RELU(np.array([[-1.0, 2.0]])).tolist())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[[0.0, 2.0]]"


def test_the_excel_engine_says_why_it_cannot_run_and_the_udfs_name_excel_errors(built):
    # without Excel the engine refuses with one line; with it, a check runs (Windows and macOS)
    if engines.available("excel"):
        [report] = check(built["conv"], engine="excel")
        assert report.passed, report.text()
    else:
        with pytest.raises(xlnet.EngineError, match="needs Microsoft Excel"):
            check(built["conv"], engine="excel")
    # every error value Excel can pass into a UDF is named as such, not called text
    for code in ("#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!"):
        assert udfs.XLNET_RELU([[code]]) == f"xlnet: x row 1, column 1 holds the error {code}"


@needs_libreoffice
def test_conv_relu_pool_and_matmul_match_the_conv_workbook(recalculated, built):
    t = recalculated["conv"]
    image, w1 = t["image"].values[0], t["conv1_w"].values
    conv = udfs.XLNET_CONV2D(image, w1[0, 0])
    np.testing.assert_allclose(udfs.XLNET_RELU(conv), t["conv1_out"].values[0], atol=1e-12)
    pooled = udfs.XLNET_MAXPOOL2D(t["conv2_out"].values[1], 2)
    np.testing.assert_allclose(pooled, t["pool_out"].values[1], atol=0)
    product = udfs.XLNET_MATMUL(t["mm_matrix"].values, t["mm_flat"].values.reshape(-1, 1))
    np.testing.assert_allclose(product.ravel(), t["mm_out"].values, atol=1e-12)
    # the matmul sheet shows the filter most alive on the top-left patch: the one its diff reads
    diff = next(op for op in xlnet.load(built["conv"]).manifest["ops"] if op["outputs"]["out"] == "mm_diff")
    f = int(diff["inputs"]["b"].split("[")[1].split(",")[0])
    assert udfs.XLNET_MAXDIFF(t["mm_relu"].values, t["conv1_out"].values[f, :4, :4]) < 1e-12
    assert t["mm_relu"].values.max() > 0


@needs_libreoffice
def test_softmax_family_matches_the_softmax_workbook(recalculated):
    t = recalculated["softmax"]
    logits, temp = t["logits"].values, float(t["T"].values)
    np.testing.assert_allclose(udfs.XLNET_SOFTMAX(logits, 1, temp), t["probs"].values, rtol=1e-12)
    np.testing.assert_allclose(udfs.XLNET_LOG_SOFTMAX(logits, 1, temp), t["log_probs"].values, rtol=1e-12)
    ce = udfs.XLNET_CROSS_ENTROPY(logits / temp, t["targets"].values.reshape(-1, 1))  # the sheet's loss of logits / T
    assert ce == pytest.approx(float(t["loss"].values), rel=1e-12)
    np.testing.assert_allclose(udfs.XLNET_SIGMOID(logits), t["sigmoid_probs"].values, rtol=1e-12)
    stable = udfs.XLNET_SOFTMAX(t["big_logits"].values)
    np.testing.assert_allclose(stable, t["stable_probs"].values, rtol=1e-12)


def test_scalars_arrive_as_1x1_and_columns_as_2d():
    image = np.arange(25, dtype=float).reshape(5, 5)
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    out = udfs.XLNET_CONV2D(image, kernel, np.array([[2.0]]), np.array([[1.0]]))
    expected = F.conv2d(torch.tensor(image)[None, None], torch.tensor(kernel)[None, None], stride=2, padding=1)
    np.testing.assert_allclose(out, expected[0, 0].numpy())
    np.testing.assert_allclose(udfs.XLNET_SOFTMAX(np.array([[1.0], [2.0]]), 0), [[0.26894142], [0.73105858]], rtol=1e-7)


def test_embedding_is_nn_embedding():
    weight = np.random.default_rng(0).normal(size=(6, 3))
    ids = np.array([[4.0], [0.0], [4.0]])
    emb = torch.nn.Embedding.from_pretrained(torch.tensor(weight))
    np.testing.assert_array_equal(udfs.XLNET_EMBEDDING(ids, weight), emb(torch.tensor([4, 0, 4])).numpy())


def test_optimizer_trajectories_match_torch_optim():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = 2 * x + 30
    sgd = udfs.XLNET_SGD_TRAJECTORY(x, y, 1.0, 1.0, 0.01, 2)
    assert sgd.shape == (8, 2)
    a, b = 1.0, 1.0
    for xi, yi in list(zip(x.ravel(), y.ravel())) * 2:
        err = a * xi + b - yi
        a, b = a - 0.01 * 2 * err * xi, b - 0.01 * 2 * err
    np.testing.assert_allclose(sgd[-1], [a, b], rtol=1e-12)
    adam = udfs.XLNET_ADAM_TRAJECTORY(x, y, 1.0, 1.0, 0.1, 0.9, 0.999, 1e-8, 3)
    p = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.1)
    for xi, yi in list(zip(x.ravel(), y.ravel())) * 3:
        opt.zero_grad()
        ((p[0] * xi + p[1] - yi) ** 2).backward()
        opt.step()
    np.testing.assert_allclose(adam[-1], p.detach().numpy(), rtol=1e-12)
    # momentum is the weighted average v = beta*v + (1-beta)*g, started at the first gradient
    momentum = udfs.XLNET_SGD_TRAJECTORY(x, y, 1.0, 1.0, 0.01, 1, 0.9)
    g = np.array([2 * (1 + 1 - 32) * 1.0, 2 * (1 + 1 - 32)])
    np.testing.assert_allclose(momentum[0], [1, 1] - 0.01 * g, rtol=1e-12)
    g2 = 2 * (momentum[0, 0] * 2 + momentum[0, 1] - 34) * np.array([2.0, 1.0])
    np.testing.assert_allclose(momentum[1], momentum[0] - 0.01 * (0.9 * g + 0.1 * g2), rtol=1e-12)
    batched = udfs.XLNET_SGD_TRAJECTORY(x, y, 1.0, 1.0, 0.01, 2, 0, 3)
    assert batched.shape == (4, 2)  # rows 1-3 then row 4, twice


@needs_libreoffice
def test_trajectories_match_the_graddesc_workbook(recalculated):
    t = {k: v.values for k, v in recalculated["graddesc"].items()}
    data = (t["data_x"][:, None], t["data_y"][:, None], t["start_a"], t["start_b"])
    epochs, batch = float(t["epochs"]), float(t["batch_size"])

    def sheet(prefix):
        return np.stack([t[f"{prefix}_new_a"], t[f"{prefix}_new_b"]], axis=1)

    tol = dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(udfs.XLNET_SGD_TRAJECTORY(*data, t["sgd_lr"], epochs, 0, batch), sheet("sgd"), **tol)
    np.testing.assert_allclose(udfs.XLNET_SGD_TRAJECTORY(*data, t["mom_lr"], epochs, t["mom_beta"], batch),
                               sheet("mom"), **tol)
    adam = (t["adam_lr"], t["adam_beta1"], t["adam_beta2"], t["adam_eps"], epochs, batch)
    np.testing.assert_allclose(udfs.XLNET_ADAM_TRAJECTORY(*data, *adam), sheet("adam"), **tol)
    adamw = (t["adamw_lr"], t["adamw_beta1"], t["adamw_beta2"], t["adamw_eps"], epochs, batch, t["adamw_weight_decay"])
    np.testing.assert_allclose(udfs.XLNET_ADAM_TRAJECTORY(*data, *adamw), sheet("adamw"), **tol)


@pytest.mark.parametrize("call, words", [
    (lambda: udfs.XLNET_RELU(np.array([[1.0, None]], dtype=object)), "row 1, column 2 is blank"),
    (lambda: udfs.XLNET_RELU(np.array([[1.0, "cat"]], dtype=object)), "text 'cat'"),
    (lambda: udfs.XLNET_SIGMOID(np.array([["#DIV/0!"]], dtype=object)), "error #DIV/0!"),
    (lambda: udfs.XLNET_CONV2D(np.ones((2, 2)), np.ones((3, 3))), "larger than the image"),
    (lambda: udfs.XLNET_MATMUL(np.ones((2, 3)), np.ones((2, 3))), "column count"),
    (lambda: udfs.XLNET_MAXDIFF(np.ones((2, 2)), np.ones((3, 2))), "range_b is 3x2"),
    (lambda: udfs.XLNET_CROSS_ENTROPY(np.ones((2, 3)), np.array([[0.0], [5.0]])), "from 0 to 2"),
    (lambda: udfs.XLNET_EMBEDDING(np.array([[1.5]]), np.ones((3, 2))), "whole numbers"),
    (lambda: udfs.XLNET_SOFTMAX(np.ones((2, 2)), 3), "axis must be"),
    (lambda: udfs.XLNET_CONV2D(None, np.ones((1, 1))), "image is empty"),
    (lambda: udfs.XLNET_SGD_TRAJECTORY(np.ones((3, 1)), np.ones((2, 1)), 0, 0, 0.1), "must match"),
    (lambda: udfs.XLNET_MAXPOOL2D(np.ones((3, 3)), "big"), "size must be a number"),
    (lambda: udfs.XLNET_SGD_TRAJECTORY(np.ones((3, 1)), np.ones((3, 1)), 0, 0, 0.1, 1, 0, 5), "larger than the 3"),
    (lambda: udfs.XLNET_ADAM_TRAJECTORY(np.ones((3, 1)), np.ones((3, 1)), 0, 0, 0.1, 1.2), "beta1 must be below 1"),
])
def test_bad_arguments_give_a_readable_message(call, words):
    message = call()
    assert isinstance(message, str) and message.startswith("xlnet: ") and words in message
    assert "Traceback" not in message and "\n" not in message


def test_the_starter_book_names_the_module_and_every_call_runs_on_its_inputs(tmp_path, capsys):
    """`xlnet udfs`: the xlwings.conf sheet names xlnet.udfs, and each call the try sheet makes
    answers (here, as Excel would once the functions are imported) on the inputs typed beside it."""
    import re

    from openpyxl.utils.cell import range_boundaries

    from xlnet.cli import main

    path = tmp_path / "xlnet-udfs.xlsx"
    assert main(["udfs", "--out", str(path)]) == 0 and f"wrote {path}" in capsys.readouterr().out
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["start", "xlwings.conf", "try"]
    conf = {row[0]: row[1] for row in book["xlwings.conf"].iter_rows(values_only=True)}
    assert conf["UDF Modules"] == "xlnet.udfs"
    steps = " ".join(str(c.value) for c in book["start"]["A"] if c.value)
    assert ".xlsm" in steps and "Trust access to the VBA project object model" in steps and "Import Functions" in steps
    ws = book["try"]

    def grid(ref):
        c0, r0, c1, r1 = range_boundaries(ref)
        return np.array([[ws.cell(r, c).value for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)], dtype=float)

    def run(formula):
        name, args = re.fullmatch(r"(XLNET_\w+)\((.*)\)", formula).groups()
        inner = re.fullmatch(r"(XLNET_\w+)\((.*)\)", args)
        if inner:  # one call inside another
            return getattr(udfs, name)(run(args))
        return getattr(udfs, name)(*[grid(a) for a in args.split(",") if a])

    formulas = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str) and c.value.startswith("=")]
    assert len(formulas) == 5
    for formula in formulas:
        out = run(formula[1:])
        assert not isinstance(out, str) or out.startswith(("cpu", "cuda")), (formula, out)
    conv = run("XLNET_CONV2D(B4:G9,I4:K6)")
    assert np.asarray(conv).shape == (4, 4)


def test_the_starter_book_is_refused_as_anything_but_xlsx(tmp_path, capsys):
    from xlnet.cli import main
    assert main(["udfs", "--out", str(tmp_path / "book.xlsm")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "book.xlsm").exists()
