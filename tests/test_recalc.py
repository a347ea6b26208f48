"""Engines and the sentinel: a recalculation that did not happen is an error, never a pass."""

import shutil
import subprocess
import sys
import threading

import pytest

import xlnet
from xlnet import engines
from xlnet.engines import process
from xlnet.workbook import read
from conftest import check, needs_libreoffice, require_engine


def test_cached_values_of_a_fresh_build_are_rejected_as_stale(built):
    with pytest.raises(xlnet.EngineError, match="sentinel .* reads -1"):
        check(built["conv"], engine="cached")


@needs_libreoffice
def test_libreoffice_without_forced_recalc_keeps_stale_values_and_the_sentinel_sees_it(built, tmp_path):
    # The trap the forced-recalc profile exists for: a default profile keeps cached values.
    soffice = shutil.which("soffice")
    profile = tmp_path / "default-profile"
    subprocess.run([soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to",
                    "xlsx", "--outdir", str(tmp_path / "out"), str(built["conv"])],
                   check=True, capture_output=True, timeout=300)
    stale = read.read_workbook(tmp_path / "out" / "conv.xlsx")
    assert stale.sentinel == -1
    fresh = read.read_workbook(engines.recalc([built["conv"]], "libreoffice", tmp_path)[0])
    assert fresh.sentinel == 42


@needs_libreoffice
def test_cached_engine_passes_once_a_real_engine_has_saved_the_file(built, tmp_path):
    saved = engines.recalc([built["conv"]], "libreoffice", tmp_path)[0]
    [report] = check(saved, engine="cached")
    assert report.passed, report.text()


@needs_libreoffice
def test_six_checks_at_once_do_not_disturb_each_other(built):
    results, errors = [], []

    def run():
        try:
            results.extend(xlnet.check(built["conv"], engine="libreoffice"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    blocks = sum(len(op["outputs"]) for op in xlnet.load(built["conv"]).manifest["ops"])
    assert not errors and len(results) == 6 and all(r.passed and len(r.blocks) == blocks for r in results)


@pytest.mark.parametrize("engine", ["libreoffice", "gnumeric", "formulas"])
def test_the_users_file_is_never_modified(built, tmp_path, engine):
    require_engine(engine)
    path = tmp_path / "book.xlsx"
    shutil.copyfile(built["softmax"], path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    [report] = check(path, engine=engine)
    assert report.passed and len(report.blocks) > 20, report.text()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert list(tmp_path.iterdir()) == [path]  # nothing written beside it either


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="Excel may be present")
def test_excel_engine_says_clearly_that_excel_is_absent(built):
    with pytest.raises(xlnet.EngineError, match="needs Microsoft Excel"):
        check(built["conv"], engine="excel")


def test_engine_timeout_is_an_engine_error(tmp_path):
    with pytest.raises(xlnet.EngineError, match="did not finish within 1 s"):
        process.run([sys.executable, "-c", "import time; time.sleep(30)"], 1, "a slow engine")


def test_cuda_request_without_a_gpu_is_a_clear_error(built):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(xlnet.DeviceError, match="no CUDA GPU"):
        check(built["conv"], engine="cached", device="cuda")
