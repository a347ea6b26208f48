"""What the proof of computation costs, as ratios measured in one run on this machine:

1. the perturbed recheck through a warm LibreOffice (the loaded document's inputs set over UNO,
   recalculated again and read): a check with ``perturb=True`` against a plain check of the same
   committed book, both warm; the target is well under a second plain check (extra < 1.0);
2. the file-only proof (the lesson's manifest rebuilt, or found in the cache as a second check
   of a lesson finds it; the formulas' precedents; the formulas outside blocks): its time
   against the whole plain check.

    python benchmarks/bench_trust.py [--repeat N]

Medians of N runs (default 3), in one process with one warm LibreOffice.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import xlnet  # noqa: E402
from xlnet import engines  # noqa: E402
from xlnet.checking import pipeline, prepare  # noqa: E402
from xlnet.lessons import provenance  # noqa: E402


def timed(fn, repeat):
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def proof_only(path):
    with engines.workspace() as work:
        prep = prepare.prepare(path, work, "libreoffice")
        try:
            provenance._build.cache_clear()  # not the process's memory: the cache folder, as a fresh process
            pipeline.trust_file(prep, None, provenance.verify)
        finally:
            prep.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    books = sorted((ROOT / "workbooks").glob("*.xlsx"))
    with engines.get("libreoffice").start_warm() as warm:
        xlnet.check(books[0], warm=warm)  # torch imported, LibreOffice loaded once
        print(f"{'book':<16} {'plain s':>8} {'perturbed s':>12} {'extra':>7} {'proof s':>8} {'proof/plain':>12}")
        for book in books:
            plain = timed(lambda: xlnet.check(book, warm=warm, perturb=False), args.repeat)
            moved = timed(lambda: xlnet.check(book, warm=warm, perturb=True, seed=1), args.repeat)
            proof = timed(lambda: proof_only(book), args.repeat)
            print(f"{book.name:<16} {plain:8.2f} {moved:12.2f} {(moved - plain) / plain:7.2f} {proof:8.2f} "
                  f"{proof / plain:12.2f}")


if __name__ == "__main__":
    main()
