"""Checking a hand-made workbook from a spec, against LibreOffice's bare recalculation of it.

The workbook is typed with openpyxl as a person would, about 11,000 formulas in 10 blocks:
four 3x3 convolutions with ReLU over a 40x40 image (array formulas), their 2x2 max-pools, and
a softmax and cross-entropy over 100 rows of 20 logits with helper EXP columns. Prints the
median wall time of ``xlnet check book.xlsx`` (a fresh process: interpreter, imports, spec,
engine, torch, comparison) and of LibreOffice recalculating the same file, and their ratio.

    python benchmarks/bench_spec.py [--repeat 3]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openpyxl
from openpyxl.utils import get_column_letter as col
from openpyxl.worksheet.formula import ArrayFormula

from xlnet import engines

SIZE, CONVS, ROWS, CLASSES = 40, 4, 100, 20


def write_book(folder):
    rng = np.random.default_rng(0)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "net"
    for r in range(SIZE):
        for c in range(SIZE):
            ws.cell(1 + r, 1 + c, round(float(rng.random()), 3))
    spec = ['[ranges]\nimage = "net!A1:{}{}"\n'.format(col(SIZE), SIZE)]
    out = SIZE - 2
    for k in range(CONVS):
        top = SIZE + 2 + k * (out + 2)
        kcol = SIZE + 2 + 4 * k
        for r in range(3):
            for c in range(3):
                ws.cell(1 + r, kcol + c, round(float(rng.normal()), 3))
        kernel = f"${col(kcol)}$1:${col(kcol + 2)}$3"
        for r in range(out):
            for c in range(out):
                ref = f"{col(1 + c)}{top + r}"
                ws[ref] = ArrayFormula(ref, f"=MAX(0,SUM({col(1 + c)}{1 + r}:{col(3 + c)}{3 + r}*{kernel}))")
        conv = f"net!A{top}:{col(out)}{top + out - 1}"
        pool_col = out + 2
        for r in range(out // 2):
            for c in range(out // 2):
                ws.cell(top + r, pool_col + c,
                        f"=MAX({col(1 + 2 * c)}{top + 2 * r}:{col(2 + 2 * c)}{top + 2 * r + 1})")
        pool = f"net!{col(pool_col)}{top}:{col(pool_col + out // 2 - 1)}{top + out // 2 - 1}"
        spec.append(f'[[block]]\nop = "conv2d"\nx = "image"\nweight = "net!{kernel.replace("$", "")}"\n'
                    f'relu = true\nout = "{conv}"\n\n[[block]]\nop = "max_pool2d"\nx = "{conv}"\nkernel_size = 2\n'
                    f'out = "{pool}"\n')
    xs = wb.create_sheet("softmax")
    for i in range(ROWS):
        for j in range(CLASSES):
            xs.cell(1 + i, 1 + j, round(float(rng.normal()), 3))
            xs.cell(1 + i, 2 + CLASSES + j, f"=EXP({col(1 + j)}{1 + i})")
            xs.cell(1 + i, 3 + 2 * CLASSES + j, f"={col(2 + CLASSES + j)}{1 + i}/${col(2 + 2 * CLASSES)}{1 + i}")
        xs.cell(1 + i, 2 + 2 * CLASSES, f"=SUM({col(2 + CLASSES)}{1 + i}:{col(1 + 2 * CLASSES)}{1 + i})")
        xs.cell(1 + i, 4 + 3 * CLASSES, int(rng.integers(CLASSES)))
        xs.cell(1 + i, 5 + 3 * CLASSES, f"=-LN(OFFSET({col(3 + 2 * CLASSES)}{1 + i},0,{col(4 + 3 * CLASSES)}{1 + i}))")
    logits = f"softmax!A1:{col(CLASSES)}{ROWS}"
    probs = f"softmax!{col(3 + 2 * CLASSES)}1:{col(2 + 3 * CLASSES)}{ROWS}"
    labels = f"softmax!{col(4 + 3 * CLASSES)}1:{col(4 + 3 * CLASSES)}{ROWS}"
    losses = f"softmax!{col(5 + 3 * CLASSES)}1:{col(5 + 3 * CLASSES)}{ROWS}"
    spec.append(f'[[block]]\nop = "softmax"\nx = "{logits}"\nout = "{probs}"\n\n[[block]]\nop = "cross_entropy"\n'
                f'x = "{logits}"\ntarget = "{labels}"\nreduction = "none"\nout = "{losses}"\n')
    path = Path(folder) / "handmade.xlsx"
    wb.save(path)
    path.with_name("handmade.xlnet.toml").write_text("\n".join(spec))
    formulas = sum(1 for s in wb.worksheets for row in s.iter_rows() for c in row
                   if isinstance(c.value, (str, ArrayFormula)) and (not isinstance(c.value, str) or c.value.startswith("=")))
    return path, formulas, len(spec) - 1


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, formulas, _ = write_book(tmp)
        blocks = path.with_name("handmade.xlnet.toml").read_text().count("[[block]]")

        def bare():
            with tempfile.TemporaryDirectory() as work:
                engines.recalc([path], "libreoffice", work)

        def check():
            done = subprocess.run([sys.executable, "-m", "xlnet", "check", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stdout + done.stderr)

        lo = statistics.median(timed(bare) for _ in range(args.repeat))
        xl = statistics.median(timed(check) for _ in range(args.repeat))
    print(f"hand-made workbook: {formulas} formulas, {blocks} spec blocks")
    print(f"LibreOffice recalculation alone: {lo:.2f} s")
    print(f"xlnet check --spec (whole command): {xl:.2f} s = {xl / lo:.2f}x LibreOffice (target <= 1.5x)")


if __name__ == "__main__":
    main()
