"""``python -m dfpir <command>``: the same as the ``dfpir`` console command."""

import sys

from .cli import main

sys.exit(main())
