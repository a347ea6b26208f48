"""``python -m xlnet``: the same as the ``xlnet`` command."""

import sys

from .cli import run

sys.exit(run())
