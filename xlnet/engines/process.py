"""Engines' child processes: each in its own process group, killed whole on a timeout or on any
way out, and never left running with nobody holding its pid (a signal that arrives while a child
is starting waits until the pid is known).

Even a ``kill -9`` of xlnet leaves nothing running: each group has a watchdog, a small process
of its own session reading a pipe only xlnet holds open. When xlnet dies, however it dies, the
kernel closes the pipe, and the watchdog kills the group. A worker process xlnet starts (for
``--jobs``) asks the kernel to kill it when its parent dies (``die_with_parent``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from ..errors import EngineError, option


def run(cmd, timeout, what, env=None, tmpdir=None):
    """Run a command in its own process group; kill the whole group on timeout or exit.

    ``tmpdir`` becomes the command's TMPDIR, so whatever temporary files it leaves behind
    when it is killed go with the caller's workspace."""
    env = dict(env if env is not None else os.environ)
    if tmpdir is not None:
        env.update(TMPDIR=str(tmpdir), TMP=str(tmpdir), TEMP=str(tmpdir))
    proc = guard = None
    try:
        with starting_a_child():
            guard = Watchdog()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, preexec_fn=child_dies_with_parent())
            guard.watch(proc)
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        raise EngineError(f"{what} did not finish within {timeout} s and was stopped "
                          f"(raise {option('timeout')} for a large workbook)") from None
    finally:
        if proc is not None:
            kill_group(proc)
            if proc.returncode is None:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
        if guard is not None:
            guard.stop()
    if proc.returncode != 0:
        text = (stderr or stdout).decode(errors="replace").strip().splitlines()
        tail = next((line for line in reversed(text) if line.strip()), "")
        if proc.returncode < 0:
            raise EngineError(f"{what} crashed (killed by signal {-proc.returncode})" + (f": {tail[:200]}" if tail else ""))
        raise EngineError(f"{what} failed with exit code {proc.returncode}" + (f": {tail[:200]}" if tail else ""))
    return stdout.decode(errors="replace")


class _Starting:
    """Signals that arrive while the main thread starts a child: an exception raised inside
    ``Popen`` would leave the child running with nobody holding its pid, so a signal handler
    asks ``defer_signal`` first and the signal is raised again once the pid is known."""

    active = False
    pending = []


def defer_signal(signum):
    """For a signal handler: True when the signal must wait (a child is being started); it is
    raised again as soon as the child's pid is known."""
    if _Starting.active:
        _Starting.pending.append(signum)
        return True
    return False


@contextlib.contextmanager
def starting_a_child():
    main = threading.current_thread() is threading.main_thread()
    if main:
        _Starting.active = True
    try:
        yield
    finally:
        if main:
            _Starting.active = False
            pending, _Starting.pending = _Starting.pending, []
            for signum in pending[:1]:
                signal.raise_signal(signum)


def kill_group(proc):
    """Kill the command's whole process group, and wait (a few seconds at most) until it is gone:
    every member dead (a zombie waiting for init to reap it holds nothing any more)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        proc.poll()  # reaps the leader, so only live members keep the group
        if not _group_alive(proc.pid):
            return
        time.sleep(0.02)


def _group_alive(pgid):
    """True while a process of the group is alive; on Linux, zombies do not count."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


_WATCHDOG = ("import os, signal, sys\n"
             "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):\n"
             "    signal.signal(s, signal.SIG_IGN)\n"
             "told = sys.stdin.buffer.read().split()\n"  # returns when the pipe closes: the one who held it is gone
             "if told:\n"
             "    try:\n"
             "        os.killpg(int(told[0]), signal.SIGKILL)\n"
             "    except OSError:\n"
             "        pass\n")


class Watchdog:
    """Kills a child's process group if this process dies before it stops the watchdog.

    Started before the child (``Watchdog()``), told the child's process group once it exists
    (``watch``): a child started with ``child_dies_with_parent()`` is killed by the kernel if
    this process dies in between.
    """

    def __init__(self):
        read, self._write = os.pipe()  # both ends not inherited by any other child
        try:
            self._proc = subprocess.Popen([sys.executable, "-S", "-I", "-c", _WATCHDOG], stdin=read,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True, close_fds=True)
        except BaseException:
            os.close(self._write)
            raise
        finally:
            os.close(read)

    def watch(self, proc):
        """Guard ``proc``'s process group (it was started with ``start_new_session=True``)."""
        os.write(self._write, f"{proc.pid}\n".encode())

    def stop(self):
        """The group is dealt with: stop the watchdog first (it must never kill a reused group id)."""
        with contextlib.suppress(OSError):
            self._proc.kill()
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._write)


_PRCTL = []


def child_dies_with_parent():
    """A ``preexec_fn`` asking the kernel to kill the child when this process dies (Linux, and
    only from the main thread: the signal follows the thread that started the child); None
    where it cannot."""
    if threading.current_thread() is not threading.main_thread() or not sys.platform.startswith("linux"):
        return None
    if not _PRCTL:
        try:
            import ctypes

            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)  # looked up before any fork
        except Exception:
            _PRCTL.append(None)
    prctl = _PRCTL[0]
    if prctl is None:
        return None

    def set_signal():
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG

    return set_signal


def die_with_parent():
    """Ask the kernel to kill this process when its parent dies (Linux); exit now if it already has."""
    parent = os.getppid()
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent or parent == 1:
        os._exit(1)
