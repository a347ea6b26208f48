"""Every way a check can end leaves nothing behind: no engine process, no temporary folder.

Each test runs ``xlnet check`` in a child process with a private TMPDIR, so every folder the
run (and the engine it starts) creates lands there, and every engine process started carries
that folder in its command line (its profile lives in it)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import needs_libreoffice, require_engine

pytestmark = pytest.mark.slow  # processes and engines started per case


def _processes_carrying(marker, environment=False):
    """Pids of live processes whose command line mentions ``marker`` (a private folder of the
    test: an engine's profile lies in it), or their environment too (every child of the run
    inherits its TMPDIR)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                text = fh.read()
            if environment:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    text += fh.read()
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
        except OSError:
            continue
        if marker.encode() in text:
            found.append(int(pid))
    return found


def _start_check(tmp_path, book, *extra):
    private = tmp_path / "tmp"
    private.mkdir()
    env = dict(os.environ, TMPDIR=str(private))
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", "check", str(book), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, private


def _wait_for_engine(private, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _processes_carrying(str(private)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the engine never started")


def _assert_nothing_left(private):
    deadline = time.monotonic() + 10
    while _processes_carrying(str(private)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_carrying(str(private)) == [], "an engine process outlived the check"
    assert list(private.iterdir()) == [], f"left behind: {list(private.iterdir())}"


@needs_libreoffice
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_the_recalculation_ends_the_engine_and_removes_every_folder(built, tmp_path, signum):
    proc, private = _start_check(tmp_path, built["embeddings"])
    _wait_for_engine(private, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (out, err)
    assert "Traceback" not in err
    _assert_nothing_left(private)


def _slow_soffice(tmp_path):
    """A folder holding a stand-in soffice that never finishes (as a LibreOffice far slower than
    any timeout would), its arguments on its command line as the real one's are: whether a
    timeout fires must not depend on how fast this machine recalculates."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "soffice").write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import time; time.sleep(600)' \"$@\"\n")
    (fake / "soffice").chmod(0o755)
    return fake


@needs_libreoffice
@pytest.mark.parametrize("warm", ["warm", "batch"])
def test_a_timeout_stops_the_engine_and_leaves_no_folder(built, tmp_path, monkeypatch, warm):
    monkeypatch.setenv("PATH", f"{_slow_soffice(tmp_path)}:{os.environ['PATH']}")
    if warm == "batch":
        monkeypatch.setenv("XLNET_UNO_PYTHON", "none")
    proc, private = _start_check(tmp_path, built["embeddings"], "--timeout", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert err.count("\n") == 1 and "did not finish within 1 s" in err, err
    _assert_nothing_left(private)


def test_the_formulas_engine_honours_the_timeout(built, tmp_path):
    require_engine("formulas")
    started = time.monotonic()
    proc, private = _start_check(tmp_path, built["embeddings"], "--engine", "formulas", "--timeout", "2")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert "the formulas engine did not finish within 2 s" in err, err
    assert time.monotonic() - started < 60  # it runs for minutes when not stopped
    _assert_nothing_left(private)


def test_an_engine_that_crashes_is_one_line_and_exit_2(built, tmp_path):
    # a stand-in soffice that dies of a signal mid-run, first on PATH
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "soffice").write_text("#!/bin/sh\nkill -SEGV $$\n")
    (fake / "soffice").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "xlnet", "check", str(built["conv"])], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "LibreOffice crashed (killed by signal 11)" in result.stderr, result.stderr


@needs_libreoffice
@pytest.mark.parametrize("how", ["warm", "batch", "jobs", "serve"])
def test_a_kill_9_of_xlnet_leaves_no_engine_running(built, tmp_path, how):
    require_engine("libreoffice")
    private = tmp_path / "tmp"
    private.mkdir()
    env = dict(os.environ, TMPDIR=str(private), XLNET_SOCKET=str(tmp_path / "serve.sock"))
    if how == "batch":  # a LibreOffice that never finishes: it would run on for ever
        env["XLNET_UNO_PYTHON"] = "none"
        env["PATH"] = f"{_slow_soffice(tmp_path)}:{os.environ['PATH']}"
    args = {"warm": ["check", built["embeddings"], "--cold"], "batch": ["check", built["embeddings"], "--cold"],
            "jobs": ["check", built["embeddings"], built["graddesc"], "--jobs", "2"], "serve": ["serve"]}[how]
    proc = subprocess.Popen([sys.executable, "-m", "xlnet", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any("UserInstallation" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                  for p in _processes_carrying(str(private), True) if os.path.exists(f"/proc/{p}/cmdline")):
        assert proc.poll() is None and time.monotonic() < deadline, "LibreOffice never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    reader = threading.Thread(target=proc.stdout.read, daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "the caller's output is still held open (a CI step would wait for ever)"
    proc.stdout.close()
    deadline = time.monotonic() + 15
    while _processes_carrying(str(private), True) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {p: open(f"/proc/{p}/cmdline", "rb").read()[:200] for p in _processes_carrying(str(private), True)}
    assert left == {}, f"a process outlived the xlnet that was killed: {left}"


@needs_libreoffice
def test_a_check_leaves_no_libreoffice_pipe_in_the_shared_temporary_folder(built, tmp_path):
    from xlnet.engines import libreoffice

    def live_pipes(since):  # this user's LibreOffice sockets made since ``since`` that someone listens on
        found = set()
        for folder in libreoffice._PIPE_FOLDERS:
            for e in os.scandir(folder) if os.path.isdir(folder) else ():
                if e.name.startswith(f"OSL_PIPE_{os.getuid()}_"):
                    try:
                        if e.stat(follow_symlinks=False).st_mtime >= since and libreoffice._listening(e.path):
                            found.add(e.path)
                    except OSError:
                        continue
        return found

    for extra in ([], ["XLNET_UNO_PYTHON"]):  # a warm LibreOffice of the check's own, then a batch conversion
        env = dict(os.environ, **({"XLNET_UNO_PYTHON": "none"} if extra else {}))
        started, seen = time.time() - 1, set()
        proc = subprocess.Popen([sys.executable, "-m", "xlnet", "check", str(built["conv"]), "--cold"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None:  # the sockets of this run's LibreOffice: made since it began, listened on
            seen |= live_pipes(started)
            time.sleep(0.02)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert seen, "no LibreOffice socket was ever seen: the test sees nothing"
        assert {p for p in seen if os.path.lexists(p)} == set(), "LibreOffice's sockets were left behind"


@needs_libreoffice
def test_a_check_that_builds_a_torch_optimizer_leaves_no_compiler_folder(built, tmp_path):
    # graddesc's annealed Adam is checked against torch.optim.lr_scheduler, which needs a real
    # torch.optim.Optimizer: constructing one imports the compiler, which makes torchinductor_<user>
    proc, private = _start_check(tmp_path, built["graddesc"], "--cold")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, (out, err)
    _assert_nothing_left(private)
