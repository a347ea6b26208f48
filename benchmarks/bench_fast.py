"""The fast-check targets, each as a ratio measured in one run on this machine:

1. cold: ``xlnet check --cold`` of the committed books (a fresh process, LibreOffice started for
   it) against a bare LibreOffice batch recalculation of the same files (``soffice
   --convert-to`` with the forced-recalculation profile), for the four books of the target and
   for all five;
2. warm: with ``xlnet serve`` running, ``xlnet check`` of the saved conv book (wall, fresh
   client process) against a cold check of it;
3. cached: ``xlnet check --engine cached`` of the committed books recalculated by LibreOffice
   (a fresh process: interpreter, imports, torch included), beside ``python -c "import torch"``;
4. the large graddesc (20 rows x 50 epochs): a whole cold check of it beyond LibreOffice's
   recalculation (check wall - recalc wall), against that recalculation;
5. 20 copies of the embeddings book: ``--jobs 2`` against ``--jobs 1``.

    python benchmarks/bench_fast.py [--repeat N] [--only 1,2,...]

Every command runs as a user runs it (``python -m xlnet ...`` in a fresh process) with the
medians of N runs (default 3).
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUR = ["conv", "softmax", "embeddings", "graddesc"]


def run(cmd, env, ok=(0,)):
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {result.returncode}: {result.stderr[-500:]}")
    return seconds, result.stdout


def median(fn, repeat):
    return statistics.median(fn() for _ in range(repeat))


def xlnet(*args):
    return [sys.executable, "-m", "xlnet", *map(str, args)]


def bare_libreoffice(paths, tmp, env):
    """soffice --convert-to of the files in one process, with xlnet's forced-recalculation profile."""
    from xlnet.engines import libreoffice

    work = Path(tempfile.mkdtemp(dir=tmp))
    profile = work / "profile"
    (profile / "user").mkdir(parents=True)
    (profile / "user" / "registrymodifications.xcu").write_text(libreoffice.PROFILE)
    cmd = [libreoffice.soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
           "--nolockcheck", "--nodefault", "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir",
           str(work / "out"), *map(str, paths)]
    seconds, _ = run(cmd, dict(env, SAL_USE_VCLPLUGIN="svp"))
    shutil.rmtree(work, ignore_errors=True)
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="1,2,3,4,5", help="which targets to time, e.g. 1,3")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-fast-"))
    env = dict(os.environ, XLNET_SOCKET=str(tmp / "serve.sock"))
    books = {p.stem: p for p in sorted((ROOT / "workbooks").glob("*.xlsx"))}
    four = [books[n] for n in FOUR]
    rows = []
    try:
        if 1 in only:
            for label, paths in (("four books", four), ("all five books", list(books.values()))):
                lo = median(lambda: bare_libreoffice(paths, tmp, env), args.repeat)
                check = median(lambda: run(xlnet("check", "--cold", *paths), env)[0], args.repeat)
                rows.append((f"1. cold check, {label}", check, lo, "bare LibreOffice batch", 1.3, "<="))
        if 2 in only:
            cold = median(lambda: run(xlnet("check", "--cold", books["conv"]), env)[0], args.repeat)
            server = subprocess.Popen(xlnet("serve"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                server.stdout.readline()
                run(xlnet("check", books["conv"]), env)  # the first request after start-up
                warm = median(lambda: run(xlnet("check", books["conv"]), env)[0], max(args.repeat, 5))
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=60)
            rows.append(("2. warm re-check of conv (wall)", warm, 1.0, "one second", 0.6, "<="))
            rows.append(("2. warm re-check of conv", warm, cold, "cold check of conv", 0.25, "<="))
        if 3 in only:
            from xlnet import engines
            folder = tmp / "recalculated"
            folder.mkdir()
            work = tmp / "cached-work"
            work.mkdir()
            for book, copy in zip(books.values(), engines.recalc(list(books.values()), "libreoffice", work)):
                shutil.copyfile(copy, folder / book.name)
            saved = [folder / p.name for p in books.values()]
            torch_s = median(lambda: run([sys.executable, "-c", "import torch"], env)[0], args.repeat)
            cached4 = median(lambda: run(xlnet("check", "--engine", "cached", *[folder / b.name for b in four]), env)[0], args.repeat)
            cached5 = median(lambda: run(xlnet("check", "--engine", "cached", *saved), env)[0], args.repeat)
            rows.append(("3. cached, four books (wall)", cached4, 3.0, "three seconds", 1.0, "<="))
            rows.append(("3. cached, all five books (wall)", cached5, 3.0, "three seconds", 1.0, "<="))
            rows.append(("3. `import torch` alone (wall)", torch_s, 3.0, "three seconds", None, ""))
        if 4 in only:
            out = tmp / "large"
            run(xlnet("build", "graddesc", "--points", 20, "--epochs", 50, "--out", out), env)
            large = out / "graddesc.xlsx"
            lo = median(lambda: bare_libreoffice([large], tmp, env), args.repeat)
            check = median(lambda: run(xlnet("check", "--cold", large), env)[0], args.repeat)
            rows.append(("4. large graddesc: check beyond LO recalc", check - lo, lo, "LibreOffice recalc", 0.5, "<="))
        if 5 in only:
            copies = tmp / "class"
            copies.mkdir()
            paths = []
            for i in range(20):
                paths.append(copies / f"student{i:02d}.xlsx")
                shutil.copyfile(books["embeddings"], paths[-1])
            one = median(lambda: run(xlnet("check", *paths, "--jobs", 1), env)[0], args.repeat)
            two = median(lambda: run(xlnet("check", *paths, "--jobs", 2), env)[0], args.repeat)
            rows.append(("5. 20 embeddings books, --jobs 1 over --jobs 2", one, two, "--jobs 2", 1.6, ">="))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'measure':<46} {'s':>7} {'against':>8} {'ratio':>6}  target")
    for label, value, against, what, target, sense in rows:
        ratio = value / against
        verdict = "" if target is None else (f"{sense} {target:g}: " + (
            "met" if (ratio <= target if sense == "<=" else ratio >= target) else "NOT met"))
        print(f"{label:<46} {value:>7.2f} {against:>8.2f} {ratio:>6.2f}  ({what}) {verdict}")


if __name__ == "__main__":
    main()
