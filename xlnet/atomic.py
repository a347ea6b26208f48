"""Write files atomically: to a temporary file beside the target, then rename over it."""

import contextlib
import os
import tempfile


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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
