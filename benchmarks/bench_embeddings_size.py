"""How large can the embeddings workbook grow while LibreOffice recalculates it in under a
second? Builds the lesson at growing users x movies x factors x epochs and times LibreOffice's
load + recalculation + save of each book, beyond its start-up (the time to convert a one-cell
book in the same way is subtracted; medians of --repeat runs).

    python benchmarks/bench_embeddings_size.py [--repeat N]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import xlsxwriter

import xlnet
from bench_check import _formula_cells
from xlnet import engines

# (users, movies, factors, epochs): the default, then each dimension grown in turn, then together
SIZES = [
    (10, 10, 3, 12),
    (10, 10, 3, 6), (10, 10, 3, 25), (10, 10, 3, 50),
    (10, 10, 6, 12), (10, 10, 12, 12),
    (15, 15, 3, 12), (20, 20, 3, 12), (25, 25, 3, 12), (30, 30, 3, 12),
    (10, 10, 3, 35), (20, 20, 3, 20), (15, 15, 5, 20), (20, 20, 5, 25),
]


def seconds(paths, repeat, tmp):
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=tmp) as work:
            start = time.perf_counter()
            engines.recalc(paths, "libreoffice", work)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = tmp / "tiny.xlsx"
        book = xlsxwriter.Workbook(tiny)
        book.add_worksheet().write_formula(0, 0, "=6*7", None, -1)
        book.close()
        start_up = seconds([tiny], args.repeat, tmp)
        print(f"LibreOffice start-up (a one-cell book): {start_up:.2f} s")
        print(f"{'users':>5} {'movies':>6} {'factors':>7} {'epochs':>6} {'product':>8} {'formulas':>8} "
              f"{'recalc s':>8}  under 1 s")
        best = None
        for users, movies, factors, epochs in SIZES:
            out = tmp / f"{users}-{movies}-{factors}-{epochs}"
            [path] = xlnet.build(["embeddings"], out=out, users=users, movies=movies, factors=factors, epochs=epochs)
            formulas = sum(1 for _ in _formula_cells(path))
            recalc = seconds([path], args.repeat, tmp) - start_up
            product = users * movies * factors * epochs
            fits = recalc < 1.0
            if fits and (best is None or product > best[0]):
                best = (product, users, movies, factors, epochs, recalc)
            print(f"{users:>5} {movies:>6} {factors:>7} {epochs:>6} {product:>8} {formulas:>8} {recalc:>8.2f}  "
                  f"{'yes' if fits else 'no'}")
        if best:
            product, users, movies, factors, epochs, recalc = best
            print(f"largest under 1 s: {users} x {movies} x {factors} x {epochs} = {product} ({recalc:.2f} s)")


if __name__ == "__main__":
    main()
