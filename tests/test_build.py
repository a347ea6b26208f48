"""Building: deterministic bytes, committed workbooks up to date, the manifest survives saves."""

import hashlib
import os
import subprocess
import sys

import openpyxl
import pytest

import xlnet
from xlnet import engines
from xlnet.workbook import read
from xlnet.lessons import all_lessons
from conftest import ROOT, needs_gnumeric


def test_two_builds_are_byte_identical(tmp_path):
    first = xlnet.build(out=tmp_path / "a", seed=3)
    second = xlnet.build(out=tmp_path / "b", seed=3)
    for a, b in zip(first, second):
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), a.name


def test_a_different_seed_gives_different_random_constants(tmp_path):
    [a] = xlnet.build(["conv"], out=tmp_path / "a", seed=1, untrained=True)
    [b] = xlnet.build(["conv"], out=tmp_path / "b", seed=2, untrained=True)
    assert (xlnet.load(a).tensors["conv2_w"].values != xlnet.load(b).tensors["conv2_w"].values).any()
    # trained weights do not depend on the seed; the dropout draws do
    [c] = xlnet.build(["conv"], out=tmp_path / "c", seed=1)
    [d] = xlnet.build(["conv"], out=tmp_path / "d", seed=2)
    assert (xlnet.load(c).tensors["conv2_w"].values == xlnet.load(d).tensors["conv2_w"].values).all()
    assert (xlnet.load(c).tensors["dropout_u"].values != xlnet.load(d).tensors["dropout_u"].values).any()


@pytest.mark.parametrize("lesson", list(all_lessons()))
def test_committed_workbooks_are_up_to_date(built, lesson):
    committed = ROOT / "workbooks" / f"{lesson}.xlsx"
    assert committed.is_file(), f"workbooks/{lesson}.xlsx is missing: run `xlnet build`"
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (committed, built[lesson])]
    assert digest[0] == digest[1], f"workbooks/{lesson}.xlsx is out of date: run `xlnet build`"


def test_manifest_survives_an_openpyxl_save(copy_of):
    path = copy_of("conv")
    original = xlnet.load(path).manifest
    openpyxl.load_workbook(path).save(path)
    assert read.read_workbook(path, strict_inputs=False).manifest == original


@needs_gnumeric
def test_manifest_survives_a_gnumeric_save(built, tmp_path):
    copy = engines.recalc([built["conv"]], "gnumeric", tmp_path)[0]
    assert read.read_workbook(copy).manifest == xlnet.load(built["conv"]).manifest


def test_the_manifest_records_the_graph(built):
    manifest = xlnet.load(built["conv"]).manifest
    assert manifest["lesson"] == "conv"
    ops = {op["op"] for op in manifest["ops"]}
    assert {"conv2d", "relu", "max_pool2d", "flatten", "linear", "dropout"} <= ops
    roles = {info["role"] for info in manifest["tensors"].values()}
    assert roles == {"input", "parameter", "hyper", "output"}
    assert manifest["tensors"]["conv1_w"]["shape"] == [2, 1, 3, 3]


def _other_arithmetic():
    """Environments in which numpy, OpenBLAS and the C library compute with other kernels than
    this machine's defaults: what another CPU would run (each read when a process starts)."""
    import platform

    from numpy._core import _multiarray_umath as umath

    dispatched = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    cut_back = {"NPY_DISABLE_CPU_FEATURES": " ".join(dispatched)} if dispatched else {}
    if platform.machine() in ("x86_64", "AMD64"):
        yield "OpenBLAS Prescott kernels, numpy's SIMD cut back", {"OPENBLAS_CORETYPE": "Prescott", **cut_back}
        yield "the C library without AVX2/FMA", {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2_Usable,-FMA_Usable,-AVX2,-FMA"}
    else:
        yield "numpy's SIMD cut back", cut_back


def test_the_same_settings_give_the_same_bytes_under_another_cpus_arithmetic(tmp_path):
    for k, (what, env) in enumerate(_other_arithmetic()):
        out = tmp_path / f"arith{k}"
        result = subprocess.run([sys.executable, "-m", "xlnet", "build", "--out", str(out)],
                                env=dict(os.environ, **env), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        for lesson in all_lessons():
            built = hashlib.sha256((out / f"{lesson}.xlsx").read_bytes()).hexdigest()
            committed = hashlib.sha256((ROOT / "workbooks" / f"{lesson}.xlsx").read_bytes()).hexdigest()
            assert built == committed, f"{lesson}.xlsx has other bytes under {what}"


def test_the_private_xlsxwriter_method_the_lessons_override_is_still_there_and_used(tmp_path):
    import inspect
    import zipfile

    import xlsxwriter
    from xlsxwriter.worksheet import Worksheet

    from xlnet.sheet.worksheet import PortableWorksheet
    assert "_prepare_formula" in vars(PortableWorksheet)
    assert list(inspect.signature(Worksheet._prepare_formula).parameters) == \
        list(inspect.signature(PortableWorksheet._prepare_formula).parameters) == ["self", "formula", "expand_future_functions"]
    path = tmp_path / "w.xlsx"
    book = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    sheet = book.add_worksheet("s", worksheet_class=PortableWorksheet)
    sheet.write_formula(0, 0, "=CONCAT(A2,A3)")  # XlsxWriter's own would write _xlfn.CONCAT
    book.close()
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>CONCAT(A2,A3)</f>" in xml, xml
