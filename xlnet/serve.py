"""``xlnet serve``: one process that keeps LibreOffice and torch warm, and the client that
``xlnet check`` and ``xlnet watch`` use to reach it.

The server listens on a Unix socket in a folder only its user can enter (``XLNET_SOCKET``, or
``$XDG_RUNTIME_DIR/xlnet-serve.sock``, or ``xlnet-<uid>/serve.sock`` in the temporary folder).
A request is one JSON line, the answer one JSON line: ``{"op": "check", ...}`` runs
``api.check`` with the warm LibreOffice (one request at a time, in the client's working
folder, so every message names files as the user typed them); ``{"op": "ping"}`` says who is
listening. A check goes to the server only when one answers: otherwise it starts LibreOffice
cold, and every report's header says which.

This module's top level imports the standard library only: a client starts in a fraction of a
second, with no numpy or torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import stat
import struct
import sys
import tempfile
import threading
from pathlib import Path

from .errors import EngineError, XlnetError

_MAX_REQUEST = 1 << 20


def default_socket():
    """Where ``xlnet serve`` listens, and where a check looks for it."""
    if os.environ.get("XLNET_SOCKET"):
        return Path(os.environ["XLNET_SOCKET"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "xlnet-serve.sock"
    return _shared_default()


def _peer_uid(conn):
    """The user id of the process at the other end of a Unix socket (None where the system
    does not say)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)[1]


def _refuse_foreign(path, what):
    """Raise EngineError unless ``path`` (a socket or its folder) is this user's and closed to others."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise EngineError(f"{path}: {what} is a symbolic link; refused (set XLNET_SOCKET to a path of your own)")
    if info.st_uid != os.getuid():
        raise EngineError(f"{path}: {what} belongs to another user (uid {info.st_uid}); refused: set XLNET_SOCKET "
                          "to a path of your own")
    if info.st_mode & 0o077:
        raise EngineError(f"{path}: {what} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); refused: "
                          f"chmod go-rwx {path}, or set XLNET_SOCKET to a path of your own")


def _connect(path, timeout):
    path = Path(path)
    if not hasattr(socket, "AF_UNIX") or not os.path.lexists(path):
        return None
    if path == _shared_default():  # in the shared temporary folder: its folder must be ours alone
        _refuse_foreign(path.parent, "the server's folder")
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise EngineError(f"{path}: not a socket; xlnet serve listens on a socket (set XLNET_SOCKET to another path)")
    _refuse_foreign(path, "the server's socket")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except OSError:  # nobody listening (a socket left by a server that was killed)
        conn.close()
        return None
    uid = _peer_uid(conn)
    if uid is not None and uid != os.getuid():
        conn.close()
        raise EngineError(f"{path}: the server answering there runs as another user (uid {uid}); refused: "
                          "nothing was sent to it")
    return conn


def _shared_default():
    return Path(tempfile.gettempdir()) / f"xlnet-{os.getuid()}" / "serve.sock"


def _exchange(conn, request, timeout):
    with conn:
        conn.settimeout(timeout)
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    if not data:
        raise EngineError("xlnet serve closed the connection without an answer (was it stopped?)")
    return json.loads(data)


def ping(path=None):
    """The server's description (pid, socket, LibreOffice version), or None when none listens."""
    conn = _connect(path or default_socket(), 2)
    if conn is None:
        return None
    try:
        return _exchange(conn, {"op": "ping"}, 5)
    except (OSError, ValueError, EngineError):
        return None


def request_check(files, engine, device, timeout, spec, reference, limits, path=None, perturb=None, seed=None):
    """Run a check in the server, if one listens.

    Returns:
        None when no server answers; else the list of report.Report.

    Raises:
        XlnetError with the server's one line when the check itself failed.
    """
    conn = _connect(path or default_socket(), 2)
    if conn is None:
        return None
    request = {"op": "check", "cwd": os.getcwd(), "files": [str(f) for f in files], "engine": engine,
               "device": device, "timeout": timeout, "spec": spec and str(spec),
               "reference": reference and str(reference), "limits": dataclasses.asdict(limits) if limits else None,
               "perturb": perturb, "seed": seed}
    reply = _exchange(conn, request, timeout * max(len(files), 1) + 60)
    if "error" in reply:
        raise _Remote(reply["error"], reply.get("exit", 2))
    from .report import Report
    return [Report.from_dict(r) for r in reply["reports"]]


class _Remote(XlnetError):
    """An error the server met, with the exit code the CLI gives it (3 for a defect of xlnet's)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.exit_code = code


_FIELDS = {"cwd": (str,), "files": (list,), "engine": (str,), "device": (str,), "timeout": (int, float),
           "spec": (str, type(None)), "reference": (str, type(None)), "limits": (dict, type(None)),
           "perturb": (bool, type(None)), "seed": (int, type(None))}


def _malformed(request):
    """What is wrong with a check request ('' when nothing is)."""
    for key, kinds in _FIELDS.items():
        if key not in request and type(None) not in kinds:
            return f"no {key!r}"
        if key in request and (not isinstance(request[key], kinds) or isinstance(request[key], bool) and bool not in kinds):
            return f"{key!r} should be {' or '.join(k.__name__ for k in kinds)}, not {type(request[key]).__name__}"
    if not all(isinstance(f, str) for f in request["files"]):
        return "'files' should be a list of paths"
    if not os.path.isdir(request["cwd"]):
        return f"the working folder {request['cwd'][:200]} does not exist"
    if request.get("limits") and set(request["limits"]) - {"unzipped_mb", "ratio", "cells"}:
        return "'limits' has unknown fields"
    return ""


def _hold_lock(path):
    """An open file holding an exclusive lock on ``path`` for as long as it stays open (None when
    another process holds it): one server per socket, however close together two start."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


class Server:
    """The warm engine and torch behind a Unix socket; ``serve_forever`` until interrupted."""

    def __init__(self, path=None):
        self.path = Path(path or default_socket())
        self.lock = threading.Lock()
        self.warm = None
        self._listener = None
        self._lock = None

    def start(self):
        """Start LibreOffice, import torch, and listen; returns the line saying where."""
        from .engines import warm
        from .errors import InputError

        folder = self.path.parent
        if folder == _shared_default().parent or not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _refuse_foreign(folder, "the server's folder")
        elif folder.stat().st_uid != os.getuid():
            raise EngineError(f"{folder}: belongs to another user; set XLNET_SOCKET to a path of your own")
        if os.path.lexists(self.path) and not stat.S_ISSOCK(os.lstat(self.path).st_mode):
            raise InputError(f"{self.path}: exists and is not a socket; xlnet serve does not replace a file "
                             "(give --socket a path that does not exist)")
        self._lock = _hold_lock(self.path.with_name(self.path.name + ".lock"))
        if self._lock is None or ping(self.path) is not None:
            raise EngineError(f"xlnet serve is already running on {self.path}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a server that was killed (no server holds its lock)
        self.warm = warm.WarmLibreOffice()
        import torch  # noqa: F401  (warm: the first check does not pay for it)
        from . import api, ops  # noqa: F401
        from .checking import bridge  # noqa: F401

        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no moment when another user may connect
        try:
            self._listener.bind(str(self.path))
        finally:
            os.umask(old)
        self._listener.listen(16)
        return (f"xlnet serve: listening on {self.path} ({self.warm.version}, warm; torch ready); "
                "xlnet check and xlnet watch use it; Ctrl-C stops it")

    def serve_forever(self):
        """Answer requests until interrupted (each on its own thread, checks one at a time)."""
        while True:
            conn, _ = self._listener.accept()
            uid = _peer_uid(conn)
            if uid is not None and uid != os.getuid():
                conn.close()  # another user's client: not answered
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def close(self):
        """Stop listening, remove the socket, stop LibreOffice."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self.warm is not None:
            self.warm.close()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path.with_name(self.path.name + ".lock"))
            self._lock.close()

    def _answer(self, conn):
        with conn:
            try:
                data = b""
                while not data.endswith(b"\n") and len(data) < _MAX_REQUEST:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    data += chunk
                reply = self._handle(json.loads(data))
            except Exception as exc:  # a malformed request: answered, never fatal to the server
                reply = {"error": f"bad request ({type(exc).__name__})", "exit": 2}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def _handle(self, request):
        if request.get("op") == "ping":
            return {"pid": os.getpid(), "socket": str(self.path), "engine": self.warm.version,
                    "recalculated": self.warm.recalculated}
        if request.get("op") != "check":
            return {"error": f"unknown request {str(request.get('op'))[:40]!r}", "exit": 2}
        wrong = _malformed(request)
        if wrong:
            return {"error": f"xlnet serve: a malformed request: {wrong}", "exit": 2}
        from . import api, limits as limits_mod

        with self.lock:
            saved = os.getcwd()
            try:
                os.chdir(request["cwd"])
                limits = limits_mod.Limits(**request["limits"]) if request.get("limits") else None
                reports = api.check(request["files"], engine=request["engine"], device=request["device"],
                                    timeout=request["timeout"], spec=request.get("spec"),
                                    reference=request.get("reference"), limits=limits, warm=self.warm,
                                    started="warm: xlnet serve", perturb=request.get("perturb"),
                                    seed=request.get("seed"))
                return {"reports": [r.to_dict() for r in reports]}
            except XlnetError as exc:
                return {"error": exc.command_line(), "exit": exc.exit_code}  # the client is the command line
            except OSError as exc:
                where = exc.filename if exc.filename is not None else ", ".join(request["files"])[:200]
                return {"error": f"{where}: {exc.strerror or type(exc).__name__}", "exit": 2}
            except MemoryError:
                return {"error": "out of memory: the workbook asks for more than this machine has", "exit": 2}
            except Exception as exc:
                print(f"xlnet serve: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return {"error": f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                        "exit": 3}
            finally:
                os.chdir(saved)
