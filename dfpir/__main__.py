"""``python -m dfpir <command>``: the same as the ``dfpir`` console command."""

import os
import sys

from .cli import main

try:
    status = main()
    sys.stdout.flush()
except BrokenPipeError:  # e.g. ``python -m dfpir --help | head``: the reader left, not an error
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    status = 0
sys.exit(status)
