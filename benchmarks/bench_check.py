"""Time building and checking lesson workbooks (conv by default and a large 28x28 variant with
8 filters per layer; graddesc by default and with 50 epochs of 20 rows; embeddings by default
and at 20x20 with 5 factors and 25 epochs; backprop by default and with a batch of 16 and 20
steps; attention by default and with T 16, width 16, 2 heads and 10 steps, each built
with an empty cache of trained weights) and print ratios: xlnet's own part of a check (read + torch + compare) against bare
LibreOffice recalculation, a whole check against it, and a whole check against the `formulas`
engine. LibreOffice's start-up is timed on a workbook of one formula, so that the
recalculation beyond it can be read off.

    python benchmarks/bench_check.py [--repeat N] [--skip-formulas] [--only LESSON]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import xlnet
from xlnet.checking import bridge
from xlnet import engines
from xlnet.workbook import read

VARIANTS = {
    "conv (8x8, 2+2 filters)": ("conv", {}),
    "large (28x28, 8+8 filters)": ("conv", {"size": 28, "filters1": 8, "filters2": 8}),
    "graddesc (10 rows, 8 epochs)": ("graddesc", {}),
    "graddesc (20 rows, 50 epochs)": ("graddesc", {"points": 20, "epochs": 50}),
    "embeddings (10x10, 3 factors, 12 epochs)": ("embeddings", {}),
    "embeddings (20x20, 5 factors, 25 epochs)": ("embeddings", {"users": 20, "movies": 20, "factors": 5, "epochs": 25}),
    "backprop (batch 4, 5 steps)": ("backprop", {}),
    "backprop (batch 16, 20 steps)": ("backprop", {"batch_size": 16, "steps": 20}),
    "attention (T 8, width 8, 1 head, 3 steps)": ("attention", {}),
    "attention (T 16, width 16, 2 heads, 10 steps)": ("attention", {"context": 16, "width": 16, "heads": 2,
                                                                    "steps": 10}),
}
FORMULAS_LIMIT = 20_000  # larger books are not run through the `formulas` engine


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-formulas", action="store_true")
    parser.add_argument("--only", metavar="LESSON", help="time only this lesson's variants")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        startup_s = _libreoffice_startup(tmp, args.repeat)
        for k, (label, (lesson, options)) in enumerate(VARIANTS.items()):
            if args.only and lesson != args.only:
                continue
            out = tmp / f"v{k}"
            build_s, paths = timed(lambda: _cold_build(lesson, out, tmp, options), args.repeat)
            path = paths[0]
            n_formulas = sum(1 for _ in _formula_cells(path))

            def recalc(engine):
                with tempfile.TemporaryDirectory(dir=tmp) as work:
                    return engines.recalc([path], engine, work)
            lo_s, _ = timed(lambda: recalc("libreoffice"), args.repeat)
            gn_s, _ = timed(lambda: recalc("gnumeric"), args.repeat) if engines.available("gnumeric") else (float("nan"), None)
            work = tmp / f"keep-{out.name}"
            work.mkdir()
            copy = engines.recalc([path], "libreoffice", work)[0]
            manifest = read.read_workbook(path, strict_inputs=False).manifest

            def own_part():
                book = read.read_workbook(copy, manifest=manifest)
                return bridge.check_workbook(book, "cpu", "libreoffice")
            own_s, report = timed(own_part, args.repeat)
            assert report.passed
            check_lo_s, _ = timed(lambda: xlnet.check(path, engine="libreoffice", device="cpu"), args.repeat)
            if args.skip_formulas or n_formulas > FORMULAS_LIMIT:
                check_f_s = float("nan")  # the pure-Python engine would take many minutes
            else:
                check_f_s, _ = timed(lambda: xlnet.check(path, engine="formulas", device="cpu"), 1)
            rows.append((label, n_formulas, build_s, lo_s, gn_s, own_s, check_lo_s, check_f_s))

    print(f"LibreOffice start-up (a workbook of one formula): {startup_s:.2f} s")
    print(f"{'workbook':<42} {'formulas':>8} {'build s':>8} {'LO recalc s':>11} {'beyond start':>12} "
          f"{'gnumeric s':>10} {'own part s':>10} {'own/LO':>7} {'check(LO) s':>11} {'check/LO':>8} "
          f"{'check(formulas) s':>17} {'speed-up':>8}")
    for label, n, b, lo, gn, own, clo, cf in rows:
        print(f"{label:<42} {n:>8} {b:>8.2f} {lo:>11.2f} {lo - startup_s:>12.2f} {gn:>10.2f} {own:>10.3f} "
              f"{own / lo:>7.3f} {clo:>11.2f} {clo / lo:>8.2f} {cf:>17.2f} {cf / clo:>7.1f}x")
    print("own/LO: xlnet's own part of a check (read + torch + compare) over bare LibreOffice recalc "
          "(target < 0.5); check/LO: a whole check over bare LibreOffice recalc (backprop target < 2); "
          "beyond start: LO recalc less its start-up (default backprop target < 3 s); speed-up: check with "
          "formulas over check with LibreOffice (target >= 10x).")


def _cold_build(lesson, out, tmp, options):
    """Build with an empty cache of trained weights: a shape whose weights do not ship is
    trained again, as on its first build."""
    cache = Path(tempfile.mkdtemp(dir=tmp))
    before = os.environ.get("XLNET_CACHE_DIR")
    os.environ["XLNET_CACHE_DIR"] = str(cache)
    try:
        return xlnet.build([lesson], out=out, **options)
    finally:
        if before is None:
            del os.environ["XLNET_CACHE_DIR"]
        else:
            os.environ["XLNET_CACHE_DIR"] = before


def _libreoffice_startup(tmp, repeat):
    """Seconds LibreOffice takes to open, recalculate and save a workbook of one formula."""
    import xlsxwriter
    path = tmp / "startup.xlsx"
    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet().write_formula(0, 0, "=1+1", None, 2)
    book.close()

    def recalc():
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            return engines.recalc([path], "libreoffice", work)
    return timed(recalc, repeat)[0]


def _formula_cells(path):
    import openpyxl
    book = openpyxl.load_workbook(path, read_only=True)
    for ws in book.worksheets:
        for row in ws.iter_rows(values_only=True):
            for value in row:
                if isinstance(value, str) and value.startswith("="):
                    yield value


if __name__ == "__main__":
    main()
