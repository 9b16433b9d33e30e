"""Everything a GPU run must show, in one command: model throughput, end-to-end training and
inference, written as a Markdown report (for the README's Speed section) and JSON.

    python scripts/device_report.py                      # the full report, ~8 minutes on one H100
    python scripts/device_report.py --quick              # tiny sizes, runs on a CPU in seconds
    python scripts/device_report.py --sections inference --out reports/h100

A shim kept so the documented commands work: the command is ``dfpir device_report``
(``dfpir.cli.device_report``); see ``python scripts/device_report.py --help``.
"""

import sys

from dfpir.cli.device_report import main

if __name__ == "__main__":
    sys.exit(main())
