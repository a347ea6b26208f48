"""Write files atomically: to a temporary file beside the target, then rename over it, with the
permissions a plain ``open(path, "w")`` would give (the user's umask; an existing file keeps its
own): a handout written on a shared server is readable by whoever the user's umask lets read it."""

import contextlib
import os
import re
import stat
import tempfile


def _umask():
    """The process's umask, read without changing it where the system says it (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            found = re.search(r"^Umask:\s*([0-7]+)", fh.read(), re.M)
        if found:
            return int(found.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; move it onto ``path`` on success.

    Args:
        path: the file to create or replace.

    Returns:
        A context manager yielding the temporary path. If the body raises, the temporary
        file is removed and ``path`` is left exactly as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".xlnet-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)  # replacing a file: it keeps its permissions
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
